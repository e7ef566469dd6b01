"""The hostile audio corpus through `mats caption`: each file alone (its exit code, its one
stderr line, the 440 Hz tone the good ones hold), then all of them in one batch (every good
item answered as when alone, one stderr line per bad one)."""

import json
from pathlib import Path

import numpy as np
import pytest
from reliability import hostile
from reliability.audio_files import CASES, FREQ, write_corpus

from mats.audio import prepare_audio
from mats.config import AudioConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return write_corpus(tmp_path_factory.mktemp("hostile_audio"))


def _peak_hz(path: Path) -> float:
    """The strongest frequency of the windows the tiny model sees (16 kHz, 1-s centre crop)."""
    windows = prepare_audio(path, 16000, AudioConfig(clip_seconds=1.0, long_mode="center_crop"))  # (1, 16000)
    spectrum = np.abs(np.fft.rfft(windows[0] - windows[0].mean()))
    return float(np.argmax(spectrum) * 16000 / windows.shape[1])


def _answered(path: Path, tone: bool):
    def check(ran: hostile.Ran) -> None:
        (doc,) = json.loads(ran.out)
        assert doc["audio"] == str(path) and isinstance(doc.get("caption"), str) and "error" not in doc, doc
        if tone:
            assert abs(_peak_hz(path) - FREQ) <= 2, f"the model saw a peak at {_peak_hz(path)} Hz, not {FREQ}"

    return hostile.Answer(check)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_audio_file_alone(tiny, corpus, case):
    path, _ = corpus[case.id]
    ran = hostile.run_cli("caption", "--json", "--model", tiny, "--", path)
    expect = _answered(path, case.tone) if case.error is None else hostile.Refusal((str(path),), case.error)
    hostile.judge(f"audio:{case.id}", "audio files", ran, expect)


def test_the_whole_corpus_in_one_batch(tiny, corpus):
    """The batch answers what each good file gets alone (same captions as a batch of the good
    files only), names each bad one once, and exits 1."""
    import mats

    paths = [corpus[c.id][0] for c in CASES]
    ran = hostile.run_cli("caption", "--json", "--model", tiny, "--", *paths, limit=300)
    bad = [c for c in CASES if c.error]
    errors = [line for line in ran.err_lines if line.startswith("error: ")]
    others = [line for line in ran.err_lines if not line.startswith(("error: ", "warning: "))]
    clean = ran.code == 1 and len(errors) == len(bad) and not others
    got, why = hostile.outcome(ran, hostile.Refusal((), "")) if not clean else ("clean error", "")
    hostile.TALLY["audio:whole corpus in one batch"] = ("audio files", got)
    assert got == "clean error", why or f"exit {ran.code}, {len(errors)} errors for {len(bad)} bad files, {others}"
    docs = json.loads(ran.out)
    assert [d["audio"] for d in docs] == [str(p) for p in paths]
    good = [str(p) for c, p in zip(CASES, paths) if c.error is None]
    alone = mats.load(tiny).caption(good)
    by_path = {d["audio"]: d for d in docs}
    assert [by_path[p].get("caption") for p in good] == alone
    for case, path in zip(CASES, paths):
        if case.error:
            assert case.error in by_path[str(path)]["error"], by_path[str(path)]
            assert sum(line.startswith(f"error: {path}: ") for line in errors) == 1, case.id
