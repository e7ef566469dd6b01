"""Is a mini-CLAP's audio wrong, or its text anchors? Nearest neighbours against zero-shot.

    HF_HUB_OFFLINE=1 python benchmarks/clap_alignment.py runs/mini/clap [MORE_CLAP_DIRS ...]
        [--data data/soundworld] [--category animal]

For SoundWorld's single recordings of one category (default: the animals), each mini-CLAP embeds
every recording as mats-mini hears a file (5-s windows, mean of up to 2) and reports, on the
recordings held out of CLAP training:
  - 1-NN aisfx: the label of the nearest training recording by the frozen aisfx embedding;
  - 1-NN head:  the same in the CLAP's joint space (after the trained head);
  - zero-shot:  the label whose prompt is nearest in the joint space (what classification and
                Santa rely on), and the same on the training recordings.
When the neighbours name a class far more often than its prompt does, the audio groups well
and the loss is on the text side (docs/experiments.md section 16: why label_loss exists).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mats.audio import load_audio, to_windows
from mats.config import AudioConfig
from mats.data.instructions import ZERO_SHOT_PROMPT
from mats.encoders.mini import AISFX_WINDOW_BATCH, MiniClapEncoder, load_mini_clap

HEARING = AudioConfig(clip_seconds=5.0, long_mode="mean_pool", max_windows=2)  # configs/mats-mini.yaml's


def embed(encoder: MiniClapEncoder, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A recording's (512,) aisfx embedding and (D,) joint-space embedding, window means; the
    joint one is the head on the same aisfx rows (what encoder.embed_audio computes), so the
    aisfx network runs once per window."""
    windows = to_windows(load_audio(path, encoder.sample_rate), encoder.sample_rate, HEARING)  # (W, n)
    with torch.no_grad():
        aisfx = encoder.model.embed_aisfx(
            windows, encoder.aisfx_compute(), AISFX_WINDOW_BATCH, encoder.aisfx_tower()
        )  # (W, 512)
        joint = encoder.model.encode(aisfx=aisfx.to(encoder.dtype)).float()  # (W, D)
    return aisfx.mean(0), joint.mean(0)


def nearest_label(queries: torch.Tensor, keys: torch.Tensor, key_labels: list[str]) -> list[str]:
    """Label of each query's most similar key (cosine)."""
    sims = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T  # (Q, K)
    return [key_labels[int(i)] for i in sims.argmax(dim=1)]


def accuracy(pred: list[str], gold: list[str]) -> float:
    return sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1)


def report(clap: Path, recordings: list[dict], prompt: str) -> dict:
    encoder = MiniClapEncoder(load_mini_clap(clap))
    if not encoder.arch.uses_aisfx:
        raise SystemExit(f"{clap}: not an aisfx mini-CLAP")
    aisfx, joint = zip(*(embed(encoder, r["path"]) for r in recordings))
    aisfx, joint = torch.stack(aisfx), torch.stack(joint)  # (N, 512), (N, D)
    labels = [r["label"] for r in recordings]
    train = [i for i, r in enumerate(recordings) if r["split"] == "clap"]
    held = [i for i, r in enumerate(recordings) if r["split"] == "heldout"]
    names = sorted(set(labels))
    prompts = encoder.embed_text([prompt.format(label=n) for n in names])  # (L, D)
    gold = [labels[i] for i in held]
    train_labels = [labels[i] for i in train]
    return {
        "clap": str(clap),
        "heldout": len(held),
        "train": len(train),
        "labels": len(names),
        "1nn_aisfx": accuracy(nearest_label(aisfx[held], aisfx[train], train_labels), gold),
        "1nn_head": accuracy(nearest_label(joint[held], joint[train], train_labels), gold),
        "zero_shot": accuracy(nearest_label(joint[held], prompts, names), gold),
        "zero_shot_train": accuracy(nearest_label(joint[train], prompts, names), train_labels),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("claps", nargs="+", type=Path, help="mini-CLAP directories (mini_clap.json + weights)")
    ap.add_argument("--data", type=Path, default=Path("data/soundworld"), help="a SoundWorld build")
    ap.add_argument("--category", default="animal")
    args = ap.parse_args()
    manifest = json.loads((args.data / "manifest.json").read_text())["recordings"]
    recordings = [r for r in manifest if r["category"] == args.category]
    if not recordings:
        raise SystemExit(f"no {args.category!r} recordings in {args.data / 'manifest.json'}")
    print("| mini-CLAP | held-out | 1-NN aisfx | 1-NN head | zero-shot | zero-shot, training recordings |")
    print("|---|---|---|---|---|---|")
    for clap in args.claps:
        prompt = (
            json.loads((clap / "train_config.json").read_text())["prompt"]
            if (clap / "train_config.json").is_file()
            else ZERO_SHOT_PROMPT  # MiniClapTrainConfig's default
        )
        r = report(clap, recordings, prompt)
        print(
            f"| {clap} | {r['heldout']} ({r['labels']} labels) | {r['1nn_aisfx']:.3f} | {r['1nn_head']:.3f} "
            f"| {r['zero_shot']:.3f} | {r['zero_shot_train']:.3f} |"
        )


if __name__ == "__main__":
    main()
