"""Inference latency of a MATS model, printed (not asserted): the mats-mini issue's figures.

    .venv/bin/python benchmarks/latency.py [--model mats-mini] [--bench soundworld-sound-caption]
                                           [--clips DIR] [--repeats 3] [--skip cold,warm,santa]
                                           [--threads N] [--aisfx-precision auto|fp32|bf16]

1. cold: wall time of `mats ask AUDIO "What is the sound?"` in a fresh process (process start
   to answer printed) and its CPU time, the medians of `--repeats` runs; then where one fresh
   process spends it (interpreter and torch, mats, the LM libraries, loading the model, the
   first answer);
2. warm, in one process after a first call: seconds per clip for `caption` of the same 32 clips
   at batch 1 (32 calls) and at batch 32 (one call), the median of `--repeats` rounds, and the
   throughput ratio; then each stage's share at both batch sizes (audio decoding, the encoder,
   Santa, prompt assembly, the LM's generate, the rest), timed by wrapping those calls;
3. Santa: `santa.select` on random unit vectors at the paper's M (20,000 entries, k 100,
   top-L 32) for D 512 and the model's own D, batch 1 and 32, mode "full" (the k-means lookup)
   against "no_kmeans" (a scan of the whole memory); and Santa's share of the warm latency.
Clips are the first ones of the benchmark (`$MATS_DATA`, default data/soundworld), or the first
32 audio files (sorted) of `--clips DIR`. The machine's load moves absolute times: compare the
ratios printed by one run. `--threads N` sets torch's threads for parts 2 and 3: on a machine
shared with busy processes, 2 threads on 2 cores wait on each other, and 1 gives steadier figures.
`--aisfx-precision` sets a mini-CLAP encoder's aisfx_precision for parts 2 and 3 (the model's own
setting otherwise; "auto" is bf16 on CPUs with bf16 in hardware).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch

from mats import api

QUESTION = "What is the sound?"
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
BATCH = 32

# --------------------------------------------------------------------------------------------
# cold start

# Run in a fresh interpreter: where one cold `ask` spends its time.
_COLD_STAGES = """
import json, sys, time
marks = [("start", time.perf_counter())]
import torch
marks.append(("python + torch", time.perf_counter()))
from mats import api
marks.append(("import mats.api", time.perf_counter()))
import peft, transformers.modeling_utils
marks.append(("import transformers + peft", time.perf_counter()))
pipe = api.load(sys.argv[1], device="cpu")
marks.append(("load the model", time.perf_counter()))
pipe.ask(sys.argv[2], sys.argv[3])
marks.append(("first answer", time.perf_counter()))
print(json.dumps({b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def cold_ask(model: str, audio: str, repeats: int) -> tuple[float, float]:
    """Median wall time of `python -m mats ask` in a fresh process, start to answer, and the
    median CPU time (user + system) it took: on a machine shared with busy processes the wall
    time waits for a core, the CPU time much less."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu()
        cmd = [sys.executable, "-m", "mats", "ask", audio, QUESTION, "--model", model, "--device", "cpu"]
        subprocess.run(cmd, check=True, capture_output=True, env=_env())
        times.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    return statistics.median(times), statistics.median(cpus)


def cold_stages(model: str, audio: str) -> dict[str, float]:
    """Seconds per stage of one fresh process (the interpreter's own start is not counted)."""
    out = subprocess.run(
        [sys.executable, "-c", _COLD_STAGES, model, audio, QUESTION],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# warm: throughput and each stage's share


class Stages:
    """Wall seconds spent in named calls, by wrapping them on one pipeline's objects."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        setattr(owner, attr, timed)  # an instance attribute shadows the method

    def reset(self) -> None:
        self.seconds.clear()


def instrument(pipe: api.Pipeline) -> Stages:
    stages = Stages()
    stages.wrap(pipe, "embed_audio", "audio")  # decoding + windows + encoder
    stages.wrap(pipe.encoder, "embed_audio", "encode")
    stages.wrap(pipe.model, "project_audio", "santa")
    stages.wrap(pipe.model, "generate", "generate")  # assembly + LM + detokenising
    stages.wrap(pipe.model, "assemble", "assemble")
    stages.wrap(pipe.model.lm, "generate", "lm")  # beams, and greedy where mats.greedy does not apply
    try:
        import mats.greedy
    except ImportError:  # a mats from before the greedy loop
        pass
    else:
        stages.wrap(mats.greedy, "greedy_generate", "lm")
    return stages


def breakdown(seconds: dict[str, float], total: float) -> dict[str, float]:
    """Exclusive seconds per stage out of the nested wrapped calls."""
    s = seconds
    parts = {
        "audio decoding + windows": s["audio"] - s["encode"],
        "audio encoder": s["encode"],
        "Santa": s["santa"],
        "prompt assembly (mapper)": s["assemble"],
        "LM generate": s["lm"],
        "detokenise, glue": s["generate"] - s["assemble"] - s["lm"],
    }
    parts["other Python"] = total - sum(parts.values())
    return parts


def warm(pipe: api.Pipeline, clips: list[str], repeats: int) -> dict:
    """Per-clip seconds at batch 1 and batch len(clips), medians of `repeats` interleaved
    rounds, and the stage breakdown of the median round of each."""
    pipe.caption(clips[:2])  # lazy initialisation out of the way
    pipe.caption(clips[0])
    stages = instrument(pipe)
    rounds: dict[int, list[tuple[float, dict]]] = {1: [], len(clips): []}
    for _ in range(repeats):
        for size in rounds:
            stages.reset()
            t0 = time.perf_counter()
            for i in range(0, len(clips), size):
                pipe.caption(clips[i : i + size] if size > 1 else clips[i])
            total = time.perf_counter() - t0
            rounds[size].append((total, breakdown(stages.seconds, total)))
    out = {}
    for size, runs in rounds.items():
        runs.sort(key=lambda r: r[0])
        total, parts = runs[len(runs) // 2]
        out[size] = {"per_clip": total / len(clips), "parts": {k: v / len(clips) for k, v in parts.items()}}
    return out


# --------------------------------------------------------------------------------------------
# Santa


def santa_select(dim: int, m: int = 20_000, k: int = 100, top_l: int = 32, repeats: int = 3) -> dict:
    """ms per `select` call, modes full and no_kmeans, batch 1 and BATCH, on random unit vectors."""
    from mats.config import SantaConfig
    from mats.santa import build_memory, select

    gen = torch.Generator().manual_seed(0)
    text = torch.randn(m, dim, generator=gen)
    cfg = SantaConfig(k=k, top_l=top_l, memory_size=m)
    memory = build_memory(text, 0.0, cfg)
    out = {}
    for b in (1, BATCH):
        z = torch.nn.functional.normalize(torch.randn(64 * b, dim, generator=gen), dim=-1)
        queries = z.split(b)  # 64 calls of batch b
        for mode in ("full", "no_kmeans"):
            mode_cfg = replace(cfg, mode=mode)
            best = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for q in queries:
                    select(q, memory, mode_cfg)
                best.append((time.perf_counter() - t0) / len(queries))
            out[(mode, b)] = statistics.median(best) * 1000
    return out


def santa_call_ms(pipe: api.Pipeline, dim: int, repeats: int = 3) -> float | None:
    """ms per `project_audio` call at batch 1 on the model's own memory (None: no memory)."""
    if pipe.model.memory is None:
        return None
    z = torch.nn.functional.normalize(torch.randn(200, dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for row in z.split(1):
            pipe.model.project_audio(row)
        times.append((time.perf_counter() - t0) / len(z))
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------------------------


def find_clips(bench: str, clips_dir: str | None) -> list[str]:
    if clips_dir:
        files = sorted(p for p in Path(clips_dir).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        clips = [str(p) for p in files[:BATCH]]
        where = clips_dir
    else:
        from mats.evaluate.benchmarks import load_benchmark

        _, rows = load_benchmark(bench)
        clips, where = [r["audio"] for r in rows[:BATCH]], bench
    if len(clips) < BATCH:
        sys.exit(f"{where}: need {BATCH} clips, found {len(clips)}")
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mats-mini")
    ap.add_argument("--bench", default="soundworld-sound-caption")
    ap.add_argument("--clips", default=None, help="a folder of audio files to use instead of the benchmark")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: cold, warm, santa")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the warm and Santa parts (0: torch's)")
    ap.add_argument("--aisfx-precision", choices=["auto", "fp32", "bf16"], help="mini-CLAP's aisfx network")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    clips = find_clips(args.bench, args.clips)
    print(f"model {args.model}, torch threads {torch.get_num_threads()}, {len(clips)} clips")

    if "cold" not in skip:
        cold, cold_cpu = cold_ask(args.model, clips[0], args.repeats)
        print(
            f"cold `mats ask` (process start to answer), median of {args.repeats}: {cold:.2f} s"
            f" (CPU time {cold_cpu:.2f} s)"
        )
        stages = cold_stages(args.model, clips[0])
        print("  one fresh process: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))

    pipe = api.load(args.model, device="cpu")
    if args.aisfx_precision:
        if not hasattr(pipe.encoder, "aisfx_compute"):
            sys.exit(f"--aisfx-precision: the {pipe.encoder.name} encoder has no aisfx network")
        pipe.encoder.aisfx_precision = args.aisfx_precision
    if hasattr(pipe.encoder, "aisfx_compute") and pipe.encoder.arch.uses_aisfx:
        print(f"aisfx network computes in {pipe.encoder.aisfx_compute()}")
    b1 = None
    if "warm" not in skip:
        res = warm(pipe, clips, args.repeats)
        b1, bn = res[1], res[len(clips)]
        ratio = b1["per_clip"] / bn["per_clip"]
        print(f"warm caption, batch 1: {b1['per_clip'] * 1000:.1f} ms per clip (same {len(clips)} clips)")
        print(f"warm caption, batch {len(clips)}: {bn['per_clip'] * 1000:.1f} ms per clip (x{ratio:.1f} vs batch 1)")
        print(f"  {'stage (ms per clip)':28s} {'batch 1':>16s} {f'batch {len(clips)}':>16s} {'ratio':>6s}")
        for name, one in b1["parts"].items():
            many = bn["parts"][name]
            r = f"x{one / many:.1f}" if many > 1e-6 else "-"
            print(
                f"  {name:28s} {one * 1000:8.2f} ({one / b1['per_clip']:4.0%})"
                f" {many * 1000:8.2f} ({many / bn['per_clip']:4.0%}) {r:>6s}"
            )

    if "santa" not in skip:
        dim = pipe.encoder.dim
        for d in sorted({512, dim}, reverse=True):
            ms = santa_select(d, repeats=args.repeats)
            print(
                f"Santa select, M 20000, K 100, L 32, D {d} (ms per call): "
                + ", ".join(
                    f"batch {b}: full {ms[('full', b)]:.3f} vs no_kmeans {ms[('no_kmeans', b)]:.3f}"
                    f" (x{ms[('no_kmeans', b)] / ms[('full', b)]:.1f})"
                    for b in (1, BATCH)
                )
            )
        own = santa_call_ms(pipe, dim, args.repeats)
        if own is None:
            print("Santa: the model has no memory (noise_only)")
        else:
            mode, size = pipe.model.cfg.santa.mode, pipe.model.memory.size
            share = f", {own / 1000 / b1['per_clip']:.1%} of a clip's warm latency at batch 1" if b1 else ""
            print(f"Santa on the model's memory (mode {mode}, M {size}): {own:.3f} ms per call at batch 1{share}")


if __name__ == "__main__":
    main()
