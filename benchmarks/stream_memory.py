"""Peak memory of training on a large corpus: streamed data against everything held in RAM.

    .venv/bin/python benchmarks/stream_memory.py [--records 1000000] [--steps 3] [--work /tmp/stream-bench]

Writes an AudioTIA JSONL of N synthetic records (mats.data.synthetic), fills the embedding cache
once (what `mats embed` does), then trains the tiny preset for a few steps on it twice, each in a
fresh process that prints its peak RSS (ru_maxrss):
- streamed: the training path (records read by offset from an unnamed file, embeddings from the
  memory-mapped cache, prompts tokenised per batch);
- in memory: the same run with every record, every embedding row (N, D) and every tokenised prompt
  held, as training did before streaming (the reference tests/test_train_data.py compares with).
Both read the same warm cache, so neither pays for embedding. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_corpus(path: Path, n: int) -> None:
    from mats.data.records import write_jsonl
    from mats.data.synthetic import synthetic_records

    write_jsonl(path, (r.to_dict() for r in synthetic_records(n)))


def run_config(data: Path, cache: Path):
    from mats.config import load_config

    run = load_config(ROOT / "configs" / "tiny.yaml")
    run.data.train, run.data.cache_dir = [str(data)], str(cache)
    run.train.probe_every = 0  # the probe's batch is not what is measured
    return run


def child(mode: str, data: Path, cache: Path, out: Path, steps: int) -> None:
    """One measurement, in its own process: prints {mode, peak_rss_mb, seconds}."""
    import numpy as np

    import mats.train as T

    run = run_config(data, cache)
    start = time.perf_counter()
    if mode == "fill":
        T.fill_embedding_cache(run, progress=False)
    else:
        if mode == "memory":
            load = T._training_data

            class InMemory(T.TrainingData):
                def prompts(self, model):
                    return [model.tokenize(r.instruction, r.answer) for r in self.records]

            def in_memory(*args, **kwargs):
                data = load(*args, **kwargs)
                records = list(data.records)
                emb = data.emb[np.arange(len(records))]  # (N, D)
                return InMemory(records, data.encoder, emb, data.task_ids, data.distinct)

            T._training_data = in_memory
        T.train(run, out, max_steps=steps, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "peak_rss_mb": round(peak), "seconds": round(time.perf_counter() - start, 1)}))


def measure(mode: str, args, data: Path, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--work", str(args.work), "--steps", str(args.steps)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        sys.exit(f"{mode} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/stream-bench"))
    ap.add_argument("--child", choices=["fill", "streamed", "memory"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    data, cache = args.work / "train.jsonl", args.work / "cache"
    if args.child:
        return child(args.child, data, cache, args.work / f"run-{args.child}-{time.time_ns()}", args.steps)
    args.work.mkdir(parents=True, exist_ok=True)
    if not data.is_file() or sum(1 for _ in data.open("rb")) != args.records:
        t = time.perf_counter()
        write_corpus(data, args.records)
        print(
            f"wrote {args.records} records ({data.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s"
        )
    rows = [measure(mode, args, data, cache) for mode in ("fill", "streamed", "memory")]
    print(f"{'':10} {'peak RSS':>10} {'seconds':>8}   ({args.records} records, {args.steps} steps of the tiny preset)")
    for r in rows:
        print(f"{r['mode']:10} {r['peak_rss_mb']:>7} MB {r['seconds']:>8}")


if __name__ == "__main__":
    main()
