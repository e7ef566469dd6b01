"""The core issue's training figures on the tiny preset, printed (not asserted).

    .venv/bin/python benchmarks/tiny_training.py [--steps 200] [--out runs/bench-tiny]

1. loss: mean of the last 10 logged steps against the first 10;
2. throughput (samples/s, median over logged steps after the first 20) with the embedding cache
   and without it (the text encoder then runs inside every step);
3. resume: stop at steps/2, resume to steps, compare final weights with an uninterrupted run;
4. DDP: a 2-process torchrun run against the 1-process loss curve (dropout on, as configured).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from mats.config import load_config, to_dict
from mats.train import train

ROOT = Path(__file__).resolve().parents[1]


def losses(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def throughput(run: Path) -> float:
    rows = losses(run)[20:]
    return statistics.median(r["samples_per_s"] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-tiny")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    cfg.data.cache_dir = str(args.out / "cache")
    steps = args.steps

    train(cfg, args.out / "straight", max_steps=steps, progress=False)
    rows = [r["loss"] for r in losses(args.out / "straight")]
    first, last = sum(rows[:10]) / 10, sum(rows[-10:]) / 10
    print(f"loss: first-10 mean {first:.3f}, last-10 mean {last:.3f}, ratio {last / first:.3f}")
    print(f"throughput with cache: {throughput(args.out / 'straight'):.1f} samples/s")

    nocache = load_config(ROOT / "configs" / "tiny.yaml")
    nocache.data.cache_dir = None
    train(nocache, args.out / "nocache", max_steps=min(steps, 60), progress=False)
    print(f"throughput without cache: {throughput(args.out / 'nocache'):.1f} samples/s")

    train(cfg, args.out / "split", max_steps=steps // 2, progress=False)
    train(cfg, args.out / "split", max_steps=steps, resume=True, progress=False)
    a = load_file(str(args.out / "straight" / "final" / "model.safetensors"))
    b = load_file(str(args.out / "split" / "final" / "model.safetensors"))
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"resume at {steps // 2} -> {steps}: final weights identical = {same}")

    path = args.out / "cfg.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "mats",
        "train",
        str(path),
        "--out",
        str(args.out / "ddp"),
        "--max-steps",
        str(steps),
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    one = [r["loss"] for r in losses(args.out / "straight")]
    two = [r["loss"] for r in losses(args.out / "ddp")]
    per_step = max(abs(x - y) / x for x, y in zip(one, two))
    win = lambda v: [sum(v[i : i + 10]) / 10 for i in range(0, len(v), 10)]  # noqa: E731
    windowed = max(abs(x - y) / x for x, y in zip(win(one), win(two)))
    print(
        f"torchrun 2 processes vs 1: max relative loss gap per step {per_step:.3%}, "
        f"per 10-step window {windowed:.3%}; throughput {throughput(args.out / 'ddp'):.1f} samples/s"
    )


if __name__ == "__main__":
    main()
