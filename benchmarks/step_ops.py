"""Operations a training step dispatches, counted on any device: what bounds a step on the host.

    PYTHONPATH=src python benchmarks/step_ops.py [--micro-batch 8] [--set train.compile_backend=inductor]
    PYTHONPATH=src python benchmarks/step_ops.py --small          # tiny shapes (the tests)

Builds gpu_check.py's random-weight checkpoints of configs/gpt2-laion.yaml's shapes (--small:
its tiny ones), trains 5 steps of one micro-batch each in bf16 on the CPU, and profiles the
forward and backward of the fourth (torch.profiler): prints the aten operations that call no
other aten operation (each one a dispatch, and on a GPU most of them a kernel launch), all
profiler events, and each step's forward-and-backward seconds. A GPU spends a few microseconds of
host time per operation whatever the rows, so when that count times ~7 us exceeds the products'
time, the GPU waits on the host (docs/experiments.md section 15). `--set` takes the recipe's
overrides (compare eager with `train.compile_backend=inductor`: inductor's fused kernels run
without an aten operation each, so the count falls; its first step pays the compilation).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import gpu_check
import torch

PROFILED_STEP = 3  # the fourth step: past the first steps' caches (and a compilation)
STEPS = 5


def count_ops(small: bool, micro_batch: int, overrides: list[str], work: Path) -> dict:
    import mats.train as train_module
    from mats.data.loading import load_training_records

    records = load_training_records(["synthetic:512"])
    corpus = [x for r in records for x in (r.text, r.instruction, r.answer)]
    clap, lm, _ = gpu_check.build_checkpoints(work / "checkpoints", corpus, small)
    args = argparse.Namespace(small=small, records=512, caption_batch=4, device="cpu")
    batch = [f"train.batch_size={micro_batch}", f"train.micro_batch_size={micro_batch}", "train.log_every=1"]
    run = gpu_check.run_config(args, clap, lm, work / "cache", [*batch, *overrides])

    forward_backward, seen = train_module._forward_backward, {"steps": [], "events": None}

    def timed(*a, **k):
        t0 = time.perf_counter()
        if len(seen["steps"]) == PROFILED_STEP:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                out = forward_backward(*a, **k)
            seen["events"] = prof.events()
        else:
            out = forward_backward(*a, **k)
        seen["steps"].append(time.perf_counter() - t0)
        return out

    train_module._forward_backward = timed  # the step's forward and backward, timed and profiled once
    try:
        train_module.train(run, work / "run", max_steps=STEPS, progress=False)
    finally:
        train_module._forward_backward = forward_backward
    events = seen["events"]
    leaf = [
        e
        for e in events
        if e.name.startswith("aten::") and not any(c.name.startswith("aten::") for c in e.cpu_children)
    ]
    return {
        "micro_batch": micro_batch,
        "overrides": overrides,
        "leaf_aten_ops": len(leaf),
        "profiler_events": len(events),
        "forward_backward_s": [round(s, 3) for s in seen["steps"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="gpu_check's tiny shapes")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides, e.g. train.compile_backend=inductor")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mats-step-ops-") as work:
        print(json.dumps(count_ops(args.small, args.micro_batch, args.set, Path(work))))


if __name__ == "__main__":
    main()
