"""benchmarks/step_ops.py on gpu_check's tiny shapes, so it cannot rot."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_step_ops_counts_a_micro_batch():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "benchmarks/step_ops.py", "--small", "--micro-batch", "4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["micro_batch"] == 4 and len(doc["forward_backward_s"]) == 5
    # a forward and backward of GPT-2 with LoRA and the mapper: hundreds of operations at least
    assert 300 < doc["leaf_aten_ops"] <= doc["profiler_events"]
