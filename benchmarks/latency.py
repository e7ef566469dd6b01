"""Inference latency of a MATS model, printed (not asserted): the mats-mini issue's figures.

    .venv/bin/python benchmarks/latency.py [--model mats-mini] [--bench soundworld-sound-caption]
                                           [--repeats 3]

1. cold: wall time of `mats ask AUDIO "What is the sound?"` in a fresh process (process start
   to answer printed), the median of `--repeats` runs;
2. warm, in one process after a first call: seconds per clip for `caption` at batch 1 (median
   over 8 clips) and at batch 32 (one call on 32 clips, divided by 32);
Clips are the first ones of the benchmark (`$MATS_DATA`, default data/soundworld).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from mats import api
from mats.evaluate.benchmarks import load_benchmark


def cold_ask(model: str, audio: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mats", "ask", audio, "What is the sound?", "--model", model],
            check=True,
            capture_output=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mats-mini")
    ap.add_argument("--bench", default="soundworld-sound-caption")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    _, rows = load_benchmark(args.bench)
    clips = [r["audio"] for r in rows[:32]]
    if len(clips) < 32:
        sys.exit(f"{args.bench}: need 32 clips, found {len(clips)}")

    cold = cold_ask(args.model, clips[0], args.repeats)
    pipe = api.load(args.model)
    pipe.caption(clips[0])  # first call: lazy initialisation out of the way
    one = []
    for clip in clips[:8]:
        t0 = time.perf_counter()
        pipe.caption(clip)
        one.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    pipe.caption(clips)
    batch = (time.perf_counter() - t0) / len(clips)
    print(f"model {args.model}, torch threads {__import__('torch').get_num_threads()}")
    print(f"cold `mats ask` (process start to answer), median of {args.repeats}: {cold:.2f} s")
    print(f"warm caption, batch 1: {statistics.median(one) * 1000:.0f} ms per clip")
    print(f"warm caption, batch 32: {batch * 1000:.0f} ms per clip (x{statistics.median(one) / batch:.1f} vs batch 1)")


if __name__ == "__main__":
    main()
