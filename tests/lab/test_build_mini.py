import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mats_lab import build_mini

PRESET = Path(__file__).resolve().parents[2] / "configs" / "mats-mini.yaml"


@pytest.fixture
def fake_stages(monkeypatch, tmp_path):
    """run_stage replaced by one that records the call and writes the stage's output."""
    calls: list[str] = []

    def fake(stage, paths, jobs=1):
        calls.append(stage)
        out = build_mini.stage_output(stage, paths)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        return {"built": stage}

    monkeypatch.setattr(build_mini, "run_stage", fake)
    return calls


def _main(tmp_path, *extra):
    build_mini.main(
        [
            "--work",
            str(tmp_path / "work"),
            "--data",
            str(tmp_path / "data"),
            "--ship-to",
            str(tmp_path / "assets"),
            "--jobs",
            "1",
            *extra,
        ]
    )
    return json.loads((tmp_path / "work" / "build.json").read_text())


def test_build_runs_every_stage_in_dependency_order_and_logs_it(fake_stages, tmp_path):
    # A checkout holds shipped assets already; a fresh build must still ship its own.
    shipped = tmp_path / "assets" / "mats-mini" / "config.json"
    shipped.parent.mkdir(parents=True)
    shipped.write_text("{}")
    summary = _main(tmp_path)
    assert fake_stages == list(build_mini.STAGES)
    assert all(summary[s]["built"] == s and summary[s]["seconds"] >= 0 for s in build_mini.STAGES)
    assert summary["total_seconds"] >= 0


def test_build_resumes_skips_built_stages_and_honours_until_and_force(fake_stages, tmp_path):
    _main(tmp_path, "--until", "lm")
    assert fake_stages == ["soundworld", "views", "clap", "embed", "lm"]
    fake_stages.clear()
    assert "total_seconds" not in _main(tmp_path, "--force", "clap")
    assert fake_stages == ["clap", "mats", "audio", "ship"]
    whole = _main(tmp_path, "--force", *build_mini.STAGES)["total_seconds"]
    fake_stages.clear()
    summary = _main(tmp_path, "--force", "clap")
    assert fake_stages == ["clap"]
    # A partial run logs its own wall time and keeps the whole build's.
    assert summary["last_run"]["stages"] == ["clap"] and summary["total_seconds"] == whole


def test_lanes_train_on_one_thread_however_many_are_pending(monkeypatch, tmp_path):
    """A resumed build (one lane of a group left) or --jobs 1 runs a lane on the one torch thread
    a whole parallel build gives it: the trained weights must not depend on what was built before."""
    import torch

    threads: dict[str, int] = {}

    def fake(stage, paths, jobs=1):
        threads[stage] = torch.get_num_threads()
        out = build_mini.stage_output(stage, paths)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        return {}

    monkeypatch.setattr(build_mini, "run_stage", fake)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _main(tmp_path, "--until", "clap")  # clap alone: its lane partner lm is not pending
        _main(tmp_path)  # embed alone in its lane, then lm, mats, audio, ship
    finally:
        torch.set_num_threads(before)
    assert {s: threads[s] for s in ("clap", "embed", "lm", "mats", "audio")} == dict.fromkeys(
        ("clap", "embed", "lm", "mats", "audio"), 1
    )
    assert threads["soundworld"] == threads["ship"] == 2  # single-lane stages keep the process's threads


def test_lanes_cover_every_stage_once_after_what_they_need():
    lanes = [lane for group in build_mini.GROUPS for lane in group]
    flat = [s for lane in lanes for s in lane]
    assert sorted(flat) == sorted(build_mini.STAGES) and len(flat) == len(set(flat))
    # (group, place in lane): a stage may follow what it needs in the same lane, or in a later group
    where = {s: (g, i) for g, group in enumerate(build_mini.GROUPS) for lane in group for i, s in enumerate(lane)}
    lane_of = {s: tuple(lane) for lane in lanes for s in lane}
    needs = {
        "views": ["soundworld"],
        "clap": ["soundworld", "views"],
        "embed": ["clap"],
        "lm": ["soundworld"],
        "mats": ["embed", "lm"],
        "audio": ["embed", "lm"],
        "ship": ["mats", "audio"],
    }
    for stage, required in needs.items():
        for n in required:
            same_lane = lane_of[n] == lane_of[stage] and where[n][1] < where[stage][1]
            assert same_lane or where[n][0] < where[stage][0], (stage, n)


def test_text_only_on_audiotia_twin_on_clap_audio(tmp_path):
    """MATS-mini trains text-only on AudioTIA with a Santa memory; the audio twin on the same
    tasks for the clap scenes (clap/tasks.jsonl), each record embedded by its audio, without
    noise or Santa."""
    from mats.data.loading import load_training_records
    from mats.data.records import write_jsonl

    data = tmp_path / "data"
    write_jsonl(
        data / "audiotia" / "train.jsonl",
        [{"text": "Rain.", "instruction": "Is it raining?", "answer": "yes", "task": "aqa"}],
    )
    paths = build_mini.BuildPaths(tmp_path / "work", data, PRESET)
    text = build_mini.mats_run_config(paths)
    twin = build_mini.mats_run_config(paths, audio=True)
    assert [(r.task, r.answer) for r in load_training_records(text.data.train)] == [("aqa", "yes")]
    assert text.data.audio_sources() == [] and text.model.santa.mode != "noise_only"  # uses a memory
    assert build_mini.mats_run_config(paths, sigma=0.003).model.noise.sigma == 0.003
    assert twin.data.train == [] and twin.data.audio_sources() == [str(data / "clap" / "tasks.jsonl")]
    assert twin.model.noise.sigma == 0.0 and twin.model.santa.mode == "noise_only"
    assert text.train == twin.train  # the same budget


SIGTERM_SCRIPT = """
import os, signal, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from mats_lab import build_mini

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, build_mini._end_children_on_sigterm)  # as main() installs it
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        print(pool.submit(os.getpid).result(), flush=True)  # the lane's pid
        pool.submit(time.sleep, 120)
        time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads process liveness from /proc (Linux)")
def test_sigterm_ends_the_lane_processes_with_the_build(tmp_path):
    """A build stopped with SIGTERM used to leave its lanes running, writing into WORK."""
    script = tmp_path / "build.py"
    script.write_text(SIGTERM_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    lane = int(proc.stdout.readline())
    assert Path(f"/proc/{lane}").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM  # not after the lane's 120 s
    deadline = time.monotonic() + 10
    while Path(f"/proc/{lane}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{lane}").exists()
