"""Recover the texts of a shipped model's Santa memory, saved before models kept them.

    .venv/bin/python scripts/recover_memory_texts.py [--model src/mats/assets/mats-mini]
        [--train data/soundworld/audiotia/train.jsonl]

Redraws the memory's rows exactly as training drew them (mats.train._build_santa_memory: distinct
texts, then `memory_size` of them by the Santa seed), embeds those texts with the model's own
encoder and writes santa.texts.json beside the memory only if every entry matches its text
(cosine > 0.999; the memory of a model trained with noise cannot be matched this way).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mats.config import load_model_config
from mats.data.loading import load_training_records
from mats.encoders import build_encoder
from mats.santa import load_memory, texts_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("src/mats/assets/mats-mini"))
    ap.add_argument("--train", type=Path, default=Path("data/soundworld/audiotia/train.jsonl"))
    args = ap.parse_args()
    cfg = load_model_config(args.model / "config.json")
    texts = [r.text for r in load_training_records([str(args.train)], None)]
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    rows = np.asarray(sorted(first.values()))
    if len(rows) > cfg.santa.memory_size:
        rows = np.sort(np.random.default_rng(cfg.santa.seed).choice(rows, cfg.santa.memory_size, replace=False))
    mem_texts = [texts[i] for i in rows]
    memory = load_memory(args.model / "santa.safetensors")
    if len(mem_texts) != memory.size:
        raise SystemExit(f"drew {len(mem_texts)} texts for a memory of {memory.size} entries")
    cfg.encoder.path = str((args.model / cfg.encoder.path).resolve()) if cfg.encoder.path else None
    encoder = build_encoder(cfg.encoder)
    with torch.no_grad():
        emb = torch.cat([encoder.embed_text(mem_texts[i : i + 512]).float() for i in range(0, len(mem_texts), 512)])
    cos = (torch.nn.functional.normalize(emb, dim=-1) * memory.entries).sum(-1)  # (M,)
    print(f"{memory.size} entries; cosine with the redrawn texts: min {cos.min():.6f}, mean {cos.mean():.6f}")
    if cos.min() <= 0.999:
        raise SystemExit("the texts do not match the memory: nothing written")
    texts_path(args.model / "santa.safetensors").write_text(json.dumps(mem_texts, ensure_ascii=False))
    print(f"written {texts_path(args.model / 'santa.safetensors')}")


if __name__ == "__main__":
    main()
