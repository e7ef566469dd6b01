"""Issue 17's fault test: a tiny training stopped by kill -9 or SIGTERM at several points -- in the
middle of a step, inside a checkpoint write, right after a checkpoint -- then `--resume`d, ends
with the same model.safetensors bytes and the same loss log as a run that was never stopped.
(What `mats train` itself does on SIGTERM: tests/test_reliability.py.)"""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, tiny_run_config

from mats.config import to_dict
from mats.train import train

RUNNER = Path(__file__).with_name("fault_runner.py")
STEPS, EVERY = 6, 2  # checkpoints at 2, 4 (and 6, the end)


def _run(cache: Path):
    run = tiny_run_config(
        cache, max_steps=STEPS, checkpoint_every=EVERY, batch_size=4, micro_batch_size=4, warmup_steps=2, probe_every=0
    )
    run.data.train = ["synthetic:60"]
    run.model.santa.memory_size = 16
    return run


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    """(the shared embedding cache, the run directory of an uninterrupted run)."""
    tmp = tmp_path_factory.mktemp("faults")
    train(_run(tmp / "cache"), tmp / "straight", progress=False)
    return tmp / "cache", tmp / "straight"


def _start(tmp: Path, cache: Path, where: str, at: int) -> tuple[subprocess.Popen, Path]:
    """The runner, paused at `where` `at`. Its stderr goes to a file (a full pipe would block it
    before it pauses); a watchdog kills it if it never gets there."""
    cfg, out = tmp / "run.yaml", tmp / "run"
    cfg.write_text(yaml.safe_dump(to_dict(_run(cache))))
    with (tmp / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(cfg), str(out), where, str(at)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline().strip()
    finally:
        watchdog.cancel()
    if line != f"paused {where} {at}":
        proc.kill()
        proc.wait()
        pytest.fail(f"the runner did not reach {where} {at}: {line!r} {_stderr(tmp)[-2000:]}")
    return proc, out


def _stderr(tmp: Path) -> str:
    return (tmp / "stderr.txt").read_text()


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


@pytest.mark.parametrize(
    "where, at, left",
    [
        ("step", 3, ["step_0000002"]),  # mid-step: gradients computed, not applied
        ("write", 4, [".tmp_step_0000004", "step_0000002"]),  # the write of checkpoint 4 half done
        ("after_checkpoint", 4, ["step_0000002", "step_0000004"]),
    ],
)
def test_kill_9_then_resume_gives_the_same_weights(straight, tmp_path, where, at, left):
    cache, reference = straight
    proc, out = _start(tmp_path, cache, where, at)
    proc.kill()  # SIGKILL: nothing of the process's own runs
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _checkpoints(out) == left
    if where == "write":  # the torn file is there, and only under the temporary name
        torn = out / "checkpoints" / ".tmp_step_0000004" / "trainable.safetensors"
        whole = reference / "checkpoints" / f"step_{STEPS:07d}" / "trainable.safetensors"
        assert 0 < torn.stat().st_size < whole.stat().st_size
    final = train(_run(cache), out, resume=True, progress=False)
    assert (final / "model.safetensors").read_bytes() == (reference / "final" / "model.safetensors").read_bytes()
    assert _losses(out) == _losses(reference)
    assert not any(name.startswith(".tmp_") for name in _checkpoints(out))  # the torn write is gone


@pytest.mark.parametrize(
    "where, at, left",
    [
        ("step", 3, ["step_0000002", "step_0000003"]),  # mid-step: the step ends, is checkpointed
        ("write", 4, ["step_0000002", "step_0000004"]),  # inside a write: it completes
    ],
)
def test_sigterm_then_resume_gives_the_same_weights(straight, tmp_path, where, at, left):
    cache, reference = straight
    proc, out = _start(tmp_path, cache, where, at)
    proc.send_signal(signal.SIGTERM)  # noted by the loop's handler; the process goes on when let
    proc.communicate("go\n", timeout=120)
    err = _stderr(tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert f"SIGTERM: stopped after step {at}" in err and "Traceback" not in err
    assert _checkpoints(out) == left
    final = train(_run(cache), out, resume=True, progress=False)
    assert (final / "model.safetensors").read_bytes() == (reference / "final" / "model.safetensors").read_bytes()
    assert _losses(out) == _losses(reference)
