"""Fixtures of the hostile corpus (issue 17) and the closing table printed after the run."""

from pathlib import Path

import pytest
from reliability import hostile


@pytest.fixture(autouse=True)
def reuse_the_tiny_model(request, monkeypatch):
    """`mats --model TINY` loads the session's tiny model once, not once per case (each model
    directory a case breaks is its own and loads for real)."""
    if "tiny" not in request.fixturenames:
        return
    import mats.api

    tiny, real = str(request.getfixturevalue("tiny")), mats.api.load
    loaded = request.config.stash.setdefault(_LOADED, {})

    def load(name=None, device="auto"):
        if str(name) != tiny or str(device) != "auto":
            return real(name, device=device)
        if tiny not in loaded:
            loaded[tiny] = real(name, device=device)
        return loaded[tiny]

    monkeypatch.setattr(mats.api, "load", load)


_LOADED = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def tiny(trained_tiny) -> Path:
    """The session's tiny trained model directory (tests/conftest.py)."""
    return trained_tiny


@pytest.fixture(scope="session")
def train_base() -> dict:
    """A tiny run that trains a step in about a second (as a dict to dump as YAML): the preset
    the config and data cases change."""
    from conftest import tiny_run_config

    from mats.config import to_dict

    run = tiny_run_config(None, max_steps=1, batch_size=4, micro_batch_size=4, warmup_steps=0, probe_every=0)
    run.data.train = ["synthetic:40"]
    run.model.santa.memory_size = 16
    run.model.santa.k = 4
    run.model.santa.top_l = 4
    return to_dict(run)


def pytest_terminal_summary(terminalreporter):
    if hostile.TALLY:
        terminalreporter.write_sep("-", f"hostile corpus (issue 17): {len(hostile.TALLY)} cases")
        terminalreporter.write_line(hostile.table())
