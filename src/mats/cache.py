"""On-disk cache of frozen-encoder text embeddings, keyed by content.

Text-only training never needs to run the text encoder inside a step: every distinct text is
embedded once and stored under `cache_dir/<encoder fingerprint>/`, keyed by the SHA-256 of the
text, so the cache survives reordering, new files and resumed runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_texts(encoder, texts: list[str], batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Embed texts in batches (B, D), with a progress bar when asked."""
    chunks = []
    for i in tqdm(range(0, len(texts), batch_size), desc="embedding texts", disable=not progress):
        chunks.append(encoder.embed_text(texts[i : i + batch_size]).float())
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.dim)


def cached_text_embeddings(encoder, texts: list[str], cache_dir: str | Path | None,
                           progress: bool = False) -> torch.Tensor:
    """Raw embeddings (N, D) of `texts`, computing only those not yet in the cache."""
    if cache_dir is None:
        return embed_texts(encoder, texts, progress=progress)
    root = Path(cache_dir) / encoder.fingerprint()[:32]
    root.mkdir(parents=True, exist_ok=True)
    index_path, emb_path = root / "index.json", root / "embeddings.npy"
    keys: list[str] = json.loads(index_path.read_text()) if index_path.is_file() else []
    table = np.load(emb_path) if emb_path.is_file() else np.zeros((0, encoder.dim), np.float32)
    if len(keys) != len(table):  # a torn write from an older version: start over
        keys, table = [], np.zeros((0, encoder.dim), np.float32)
    row = {k: i for i, k in enumerate(keys)}
    wanted = [text_key(t) for t in texts]
    new = sorted({k: t for k, t in zip(wanted, texts) if k not in row}.items())
    if new:
        fresh = embed_texts(encoder, [t for _, t in new], progress=progress).numpy()
        keys += [k for k, _ in new]
        table = np.concatenate([table, fresh.astype(np.float32)])
        # Write both files beside their targets, then rename: a crash leaves the old pair.
        np.save(root / "embeddings.tmp.npy", table)
        (root / "index.tmp.json").write_text(json.dumps(keys))
        os.replace(root / "embeddings.tmp.npy", emb_path)
        os.replace(root / "index.tmp.json", index_path)
        row = {k: i for i, k in enumerate(keys)}
    return torch.from_numpy(table[[row[k] for k in wanted]])
