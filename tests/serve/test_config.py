"""ServeConfig (mats.serve.config): its checks, and the encode threads "auto" resolves to."""

import os

import pytest

from mats.serve.config import (
    MAX_AUTO_ENCODE_THREADS,
    ServeConfig,
    ServeConfigError,
    encode_threads_for,
    torch_threads_for,
)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("batch_size", 0, "batch_size must be > 0"), ("encode_threads", -1, "encode_threads must be >= 0")],
)
def test_bad_values_are_refused(field, value, words):
    with pytest.raises(ServeConfigError, match=words):
        ServeConfig(**{field: value})


def test_encode_threads_auto_is_one_per_core_on_a_cpu_and_one_on_a_gpu():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert encode_threads_for(ServeConfig(), "cpu") == min(cores, MAX_AUTO_ENCODE_THREADS)
    assert encode_threads_for(ServeConfig(), "cuda") == 1
    assert encode_threads_for(ServeConfig(encode_threads=3), "cuda") == 3  # asked for: kept


def test_torch_threads_share_the_cores_among_the_encode_threads():
    assert torch_threads_for(ServeConfig(encode_threads=2), "cpu", cores=2) == 1
    assert torch_threads_for(ServeConfig(encode_threads=4), "cpu", cores=16) == 4
    assert torch_threads_for(ServeConfig(encode_threads=4), "cpu", cores=2) == 1  # never 0
    assert torch_threads_for(ServeConfig(encode_threads=1), "cpu", cores=8) is None  # torch's own
    assert torch_threads_for(ServeConfig(), "cuda", cores=8) is None
