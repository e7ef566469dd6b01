"""Score Santa settings of trained models on validation files, each clip's audio embedded once.

    python scripts/santa_sweep.py --models runs/mini/mats/final runs/seeds/mats-s1/final \
        --bench runs/evals/val_cls.jsonl runs/evals/val_cap.jsonl runs/evals/val_animal_qa.jsonl \
        --grid mode=full,no_kmeans lam=0.5,0.7,0.9,1.0 [--out runs/evals/santa_sweep.json]
        [--aisfx-precision auto|fp32|bf16]

Every combination of the --grid values is one setting; each is what `mats eval --santa KEY=VALUE`
computes for that model and file (the same apply_overrides and evaluate), so a chosen figure is
re-computed by the `mats eval` command printed beside it. Santa acts after the CLAP encoder, so
the audio embeddings of a model's clips are computed once and reused by every setting (the sweep
would otherwise spend nearly all its time in the aisfx network). The table gives each setting's
figure per model and the mean over models; the choice, and its rule, are the caller's (docs/
experiments.md section 7).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import torch

import mats
from mats.api import Pipeline
from mats.evaluate.ablations import apply_overrides, overrides_flags, parse_overrides
from mats.evaluate.benchmarks import load_benchmark
from mats.evaluate.runner import evaluate as run_eval

# the one figure read from each task's metrics
HEADLINE = {"classification": "accuracy", "sound_caption": "CIDEr-D", "music_caption": "CIDEr-D", "aqa": "accuracy"}


def memoised(embed):
    """Pipeline.embed_audio memoised by item (the model's encoder and audio settings are fixed)."""
    rows: dict[str, torch.Tensor] = {}

    def embed_audio(pipeline: Pipeline, items, progress: bool = False) -> torch.Tensor:
        items = list(items)
        todo = list(dict.fromkeys(str(i) for i in items if str(i) not in rows))
        if todo:
            rows.update(zip(todo, embed(pipeline, todo, progress)))
        return torch.stack([rows[str(i)] for i in items])  # (B, D)

    return embed_audio


def grid(specs: list[str]) -> list[dict]:
    """["mode=full,no_kmeans", "lam=0.5,0.9"] -> every combination, as parse_overrides dicts."""
    axes = []
    for spec in specs:
        key, _, values = spec.partition("=")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [parse_overrides(list(combo)) for combo in itertools.product(*axes)]


def headline(result: dict) -> float:
    (task, metrics), *_ = result["metrics"].items()
    return float(metrics[HEADLINE[task]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--bench", nargs="+", required=True, help="benchmark files (one task each)")
    ap.add_argument("--grid", nargs="+", required=True, help="KEY=V1,V2,... (mats eval --santa keys)")
    ap.add_argument("--out", type=Path, help="write every figure here as JSON")
    ap.add_argument("--aisfx-precision", choices=["auto", "fp32", "bf16"], help="a mini-CLAP's aisfx network")
    args = ap.parse_args()

    benches = [load_benchmark(b) for b in args.bench]
    settings = grid(args.grid)
    scores: dict[str, dict[str, list[float]]] = {}  # flags -> bench -> per-model figure
    original = Pipeline.embed_audio
    for model_path in args.models:
        Pipeline.embed_audio = memoised(original)  # fresh per model: its own encoder
        base = mats.load(model_path, device="cpu")
        if args.aisfx_precision:
            base.encoder.aisfx_precision = args.aisfx_precision
        for ov in settings:
            flags = overrides_flags(ov)
            variant = apply_overrides(base, ov)
            for name, rows in benches:
                fig = headline(run_eval(variant, (name, rows), progress=False))
                scores.setdefault(flags, {}).setdefault(name, []).append(fig)
                print(f"{model_path}  {flags:40s} {name:24s} {fig:.3f}", flush=True)
    Pipeline.embed_audio = original

    names = [name for name, _ in benches]
    print("\n| setting | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for flags, per in scores.items():
        cells = [f"{statistics.mean(per[n]):.3f} ({' / '.join(f'{v:.3f}' for v in per[n])})" for n in names]
        print(f"| {flags} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"models": args.models, "scores": scores}, indent=2) + "\n")


if __name__ == "__main__":
    main()
