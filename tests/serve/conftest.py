"""The served model: the shipped MATS-mini (loads in a few seconds), once per test process."""

import pytest

pytest.importorskip("fastapi", reason="mats serve needs the serve extra (fastapi, uvicorn, python-multipart)")

from mats.api import ASSETS  # noqa: E402

DEMO = ASSETS / "mats-mini" / "demo.wav"


@pytest.fixture(scope="session")
def pipeline():
    import mats

    return mats.load("mats-mini")


@pytest.fixture(scope="session")
def demo_bytes() -> bytes:
    return DEMO.read_bytes()
