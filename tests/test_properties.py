"""Property-based tests (hypothesis) of the readers users feed: the audio decoder, the JSONL
readers and the config loader. Whatever the input, the answer is a result or the module's own
clear error, never another exception or a hang. Bounded examples: `benchmarks/fuzz.py` runs longer."""

import io
import json
import os
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mats.audio import AudioError, prepare_audio
from mats.config import AudioConfig, ConfigError, RunConfig, field_types, from_dict
from mats.data.records import RecordError, read_audiotia

SETTINGS = settings(
    max_examples=int(os.environ.get("MATS_FUZZ_EXAMPLES", "60")),  # benchmarks/fuzz.py raises it
    deadline=None,
    database=None,  # no .hypothesis/ left in the tree
    suppress_health_check=list(HealthCheck),
)
CFG = AudioConfig(clip_seconds=0.05, long_mode="mean_pool", max_windows=3)


def _decode(tmp_path, data: bytes) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    try:
        windows = prepare_audio(path, 16000, CFG)
    except AudioError as err:
        assert str(err).startswith(f"{path}: ")
        return
    assert windows.ndim == 2 and windows.shape[1] == 800 and np.isfinite(windows).all()


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes_decode_or_fail_cleanly(tmp_path, data):
    _decode(tmp_path, data)


@SETTINGS
@given(
    channels=st.integers(0, 9),
    rate=st.integers(0, 400000),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]),
    fmt=st.sampled_from([1, 3, 0, 0xFFFE, 2]),
    size=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=400),
)
def test_random_wav_headers_decode_or_fail_cleanly(tmp_path, channels, rate, bits, fmt, size, payload):
    align = channels * bits // 8
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * align % 2**32, align % 2**16, bits)
    header += b"data" + struct.pack("<I", size)
    _decode(tmp_path, header + payload)


@SETTINGS
@given(samples=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=300))
def test_any_float_samples_give_finite_windows_or_an_error(tmp_path, samples):
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, np.float32), 16000, format="WAV", subtype="FLOAT")
    _decode(tmp_path, buf.getvalue())


@SETTINGS
@given(lines=st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)), max_size=6))
def test_jsonl_reader_reads_or_names_the_line(tmp_path, lines):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        records = read_audiotia(path)
    except RecordError as err:
        assert str(err).startswith(f"{path}:")
        return
    assert all(r.text.strip() for r in records)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = sorted(field_types(RunConfig))


@SETTINGS
@given(key=st.sampled_from(FIELDS), value=json_values)
def test_any_value_for_any_config_field_loads_or_names_the_key(key, value):
    data: dict = {}
    node = data
    *parents, name = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[name] = value
    try:
        from_dict(RunConfig, json.loads(json.dumps(data, allow_nan=True)), "run.yaml")
    except ConfigError as err:
        assert str(err).startswith("run.yaml: ")
        return
    except Exception as err:  # anything else is a bug
        pytest.fail(f"{key}={value!r}: {type(err).__name__}: {err}")
