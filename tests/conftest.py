"""Shared fixtures. Every test runs offline: nothing may reach a model hub."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist workers share the machine's cores: one torch thread per worker (and per process
# a test starts), else the workers' OpenMP threads spin-wait on each other (a tiny training test
# took 4 s alone and 53 s beside another worker).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from mats.config import RunConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The full real public files (caption, QA and label files; see ../shared/data/README.md) when
# they lie beside the repository. MATS_SHARED_DATA overrides the place: a path that does not
# exist shows what a fresh clone runs.
SHARED_DATA = Path(os.environ.get("MATS_SHARED_DATA") or ROOT.parent / "shared" / "data")
# A few rows of each of those files, copied byte for byte (tests/fixtures/README.md): what the
# tests read by default, so that they pass from a fresh clone.
FIXTURE_DATA = ROOT / "tests" / "fixtures" / "data"


def shared_file(rel: str) -> Path:
    """SHARED_DATA / rel, or skip the calling test: it needs the full file, not the fixture rows."""
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.skip(
            f"../shared/data not beside the repository: {path} not found "
            "(the full real file; MATS_SHARED_DATA names another place)"
        )
    return path


def tiny_run_config(cache_dir: Path | None, **train) -> RunConfig:
    """The tiny preset shrunk further for tests: small batches, few records."""
    run = load_config(ROOT / "configs" / "tiny.yaml")
    run.data.train = ["synthetic:400"]
    run.data.cache_dir = str(cache_dir) if cache_dir else None
    run.model.santa.memory_size = 200
    run.train.batch_size = 8
    run.train.micro_batch_size = 4
    run.train.warmup_steps = 5
    run.train.log_every = 1
    run.train.checkpoint_every = 5
    for k, v in train.items():
        setattr(run.train, k, v)
    return run


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory) -> Path:
    """A tiny model trained for a few steps (per test process); returns its final directory."""
    from mats.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    run = tiny_run_config(out / "cache", max_steps=30)
    return train(run, out / "run", progress=False)


def write_tone(path: Path, freq: float, seconds: float = 1.0, sr: int = 16000) -> Path:
    """Write a sine tone (amplitude 0.3, float32) as a WAV file; returns the path."""
    t = np.arange(int(round(seconds * sr))) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


@pytest.fixture()
def wav_file(tmp_path) -> Path:
    """One second of a 440 Hz tone at 16 kHz."""
    return write_tone(tmp_path / "tone.wav", 440)


# the width of the small aisfx network in tests/fixtures/aisfx (make_reference.py made it)
TINY_AISFX_WIDTH = 2


@pytest.fixture(scope="session")
def aisfx_weights(tmp_path_factory) -> Path:
    """A width-2 aisfx weights file as scripts/convert_aisfx.py writes them."""
    from safetensors.torch import load_file, save_file

    from mats.encoders import aisfx_net

    fixture = ROOT / "tests" / "fixtures" / "aisfx" / "tiny_checkpoint.safetensors"
    path = tmp_path_factory.mktemp("aisfx") / "aisfx.safetensors"
    state = aisfx_net.embedding_state(load_file(fixture), aisfx_net.AisfxConfig(width=TINY_AISFX_WIDTH))
    save_file(state, str(path), metadata={"format": aisfx_net.FORMAT})
    return path
