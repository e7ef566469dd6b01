"""benchmarks/gpu_check.py, run as the GPU machine runs it (python3 with PYTHONPATH=src and no
faiss, soundfile, soxr or pycocoevalcap), on the CPU with its smallest settings, so it cannot rot."""

import json
import math
import os
import subprocess
import sys

from conftest import ROOT

# What the GPU machine lacks: blocked so that an import of any of them fails, as it would there.
ABSENT = ("faiss", "soundfile", "soxr", "pycocoevalcap")


def run_without_absent_modules(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    prelude = f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


def test_gpu_check_runs_on_the_cpu_without_the_absent_modules(tmp_path):
    summary = tmp_path / "summary.json"
    args = ["--device", "cpu", "--small", "--steps", "3", "--compare-steps", "2", "--json", str(summary)]
    args += ["--micro-batches", "8"]  # the small batch (8) in one pass
    args += ["--compile", "aot_eager", "no-such-backend"]  # a compiled variant, and one that fails
    r = run_without_absent_modules(
        f"import runpy\nsys.argv = ['gpu_check.py', *{args!r}]\n"
        "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(summary.read_text())
    plain, ckpt = doc["train"]["plain"], doc["train"]["checkpointing"]
    assert plain["samples_per_s"] > 0 and ckpt["samples_per_s"] > 0
    assert plain["model_tflop_per_step"] > 0 and plain["plan_memory_gib"] > 0
    whole = doc["train"]["plain, micro-batch 8"]
    assert (plain["micro_batch"], whole["micro_batch"]) == (4, 8) and whole["samples_per_s"] > 0
    assert math.isfinite(whole["last_loss"]) and whole["last_loss"] > 0  # (dropout draws differ from plain's)
    # recomputing the activations replays dropout's RNG: the same losses, within float noise
    assert abs(plain["last_loss"] - ckpt["last_loss"]) < 1e-4 * abs(plain["last_loss"])
    compiled = doc["train"]["plain, compiled aot_eager"]
    assert compiled["samples_per_s"] > 0
    assert abs(plain["last_loss"] - compiled["last_loss"]) < 1e-4 * abs(plain["last_loss"])
    assert "not a torch.compile backend" in doc["train"]["plain, compiled no-such-backend"]["error"]
    check = doc["loss_check"]
    assert check["ok"] and len(check["device"]) == len(check["cpu"]) == 2
    assert doc["caption"]["n"] == 4 and isinstance(doc["caption"]["example"], str)
