"""The aisfx audio tower's speed and what it makes of SoundWorld clips, printed (not asserted).

    .venv/bin/python benchmarks/aisfx_tower.py speed [--clips 32] [--weights PATH] [--device auto]
    .venv/bin/python benchmarks/aisfx_tower.py soundworld DATA [--weights PATH] [--device auto]

speed: 5-s clips (deterministic tones and noise at 44.1 kHz), embedded one clip per call in fp32
(each clip's 3 windows in one forward), then all clips' windows in batches of 64 in fp32, bf16,
and bf16 with the network in channels_last; clips/s and real-time factor (audio seconds per
second) for each, on the torch threads this process has.

soundworld: every clip of a SoundWorld build (DATA: its bench/*.jsonl lines), decoded and resampled
from 16 to 44.1 kHz, embedded in bf16 + channels_last; prints the time, and for the two
classification benchmarks the leave-one-out 1-nearest-neighbour label accuracy among their own
clips (cosine), beside chance: a cheap look at how far the tower's space separates the labels
before any head is trained.

Weights: scripts/convert_aisfx.py's output (default <cache>/aisfx/aisfx_embedding.safetensors).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from mats.audio import load_audio
from mats.devices import resolve_device
from mats.encoders import aisfx_net as A

ROOT = Path(__file__).resolve().parents[1]
CLIP_S = 5.0


def default_weights() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    from convert_aisfx import cache_dir

    return cache_dir() / "aisfx_embedding.safetensors"


def synthetic_clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_S * A.SAMPLE_RATE)) / A.SAMPLE_RATE
    return [
        (0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
        for _ in range(n)
    ]


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    out = out.cpu() if isinstance(out, torch.Tensor) else out  # waits for a GPU to finish
    return time.perf_counter() - t0, out


def speed(weights: Path, n: int, device: torch.device) -> None:
    tower = A.load_aisfx(weights).to(device)
    clips = synthetic_clips(n)
    A.embed_clips(tower, clips[:2])  # warm-up (oneDNN kernels)
    rows = []
    sec, ref = timed(lambda: torch.cat([A.embed_clips(tower, [c]) for c in clips]))
    rows.append(("fp32, one clip per call", sec, ref))
    for name, precision, channels_last in [
        ("fp32, batches of 64 windows", "fp32", False),
        ("bf16, batches of 64 windows", "bf16", False),
        ("bf16 + channels_last, batches of 64", "bf16", True),
    ]:
        net = tower.to(memory_format=torch.channels_last) if channels_last else tower
        A.embed_clips(net, clips[:2], precision=precision)  # warm-up
        sec, emb = timed(lambda net=net, precision=precision: A.embed_clips(net, clips, precision=precision))
        rows.append((name, sec, emb))
    windows = A.clip_windows(clips[0]).shape[0]
    print(f"{n} clips of {CLIP_S:.0f} s ({windows} windows each) on {device}, torch threads {torch.get_num_threads()}")
    for name, sec, emb in rows:
        cos = torch.nn.functional.cosine_similarity(emb, ref).min().item()
        print(
            f"  {name:38s} {n / sec:7.2f} clips/s  {n * CLIP_S / sec:7.1f}x real time  "
            f"{sec / n * 1000:7.1f} ms/clip  min cosine to fp32 {cos:.5f}"
        )
    x = torch.from_numpy(np.concatenate([A.clip_windows(c) for c in clips])).to(device)
    sec, _ = timed(lambda: tower.log_mel(x))
    print(f"  front end alone (fp32): {n / sec:.1f} clips/s")


def soundworld(data: Path, weights: Path, device: torch.device) -> None:
    tower = A.load_aisfx(weights).to(device, memory_format=torch.channels_last)
    lines = {}
    for bench in sorted((data / "bench").glob("*.jsonl")):
        lines[bench.stem] = [json.loads(x) for x in bench.read_text().splitlines() if x.strip()]
    paths = sorted({str((data / "bench" / r["audio"]).resolve()) for rows in lines.values() for r in rows})
    t0 = time.perf_counter()
    waves = [load_audio(p, A.SAMPLE_RATE) for p in paths]
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = A.embed_clips(tower, waves, precision="bf16")
    t_emb = time.perf_counter() - t0
    seconds = sum(len(w) for w in waves) / A.SAMPLE_RATE
    print(
        f"{len(paths)} clips ({seconds / 60:.1f} min of audio): decode + resample {t_load:.1f} s, "
        f"embed {t_emb:.1f} s ({seconds / t_emb:.0f}x real time)"
    )
    index = {p: i for i, p in enumerate(paths)}
    for name in ("sound_classification", "instrument_classification"):
        rows = lines.get(name, [])
        if len(rows) < 2:
            continue
        e = torch.nn.functional.normalize(
            emb[[index[str((data / "bench" / r["audio"]).resolve())] for r in rows]], dim=-1
        )
        labels = [r["label"] for r in rows]
        sim = e @ e.T
        sim.fill_diagonal_(-2.0)
        nearest = sim.argmax(dim=1).tolist()
        acc = float(np.mean([labels[j] == labels[i] for i, j in enumerate(nearest)]))
        chance = sum((c / len(labels)) ** 2 for c in Counter(labels).values())  # two random clips agree
        print(f"  {name}: {len(rows)} clips, {len(set(labels))} labels, 1-NN accuracy {acc:.3f} (chance {chance:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--clips", type=int, default=32)
    sw = sub.add_parser("soundworld")
    sw.add_argument("data", type=Path)
    for p in (sp, sw):
        p.add_argument("--weights", type=Path, default=None)
        p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    args = ap.parse_args()
    weights = args.weights or default_weights()
    device = resolve_device(args.device)
    if args.cmd == "speed":
        speed(weights, args.clips, device)
    else:
        soundworld(args.data, weights, device)


if __name__ == "__main__":
    main()
