"""On-disk caches of frozen-encoder embeddings, keyed by content.

Text-only training never runs the text encoder inside a step: every distinct text is embedded
once and stored under `cache_dir/<encoder fingerprint>/`, keyed by the SHA-256 of the text, so
the cache survives reordering, new files and resumed runs. Audio embeddings (for the
audio-supervised twin) are keyed by the SHA-256 of the file's bytes and the windowing settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_file(path: str | Path, h=None):
    """Feed a file's bytes into hash object `h` (default: a new SHA-256), 1 MiB at a time."""
    h = h if h is not None else hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def file_key(path: str | Path) -> str:
    return hash_file(path).hexdigest()


def embed_texts(encoder, texts: list[str], batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Embed texts in batches (B, D), with a progress bar when asked."""
    chunks = []
    for i in tqdm(range(0, len(texts), batch_size), desc="embedding texts", disable=not progress):
        chunks.append(encoder.embed_text(texts[i : i + batch_size]).float())
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.dim)


@contextmanager
def _exclusive(root: Path):
    """Hold an exclusive lock on `root` (POSIX; elsewhere no lock). Two runs sharing a cache
    (two trainings side by side) then take turns: the second finds the first's rows instead of
    computing them again, and neither can interleave its two files with the other's."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached(
    root: Path, keys: list[str], items: list, dim: int, compute: Callable[[list], torch.Tensor]
) -> torch.Tensor:
    """Rows for `keys` from the store in `root`, computing (and storing) the missing ones."""
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        return _cached_unlocked(root, keys, items, dim, compute)


def _cached_unlocked(
    root: Path, keys: list[str], items: list, dim: int, compute: Callable[[list], torch.Tensor]
) -> torch.Tensor:
    index_path, emb_path = root / "index.json", root / "embeddings.npy"
    stored: list[str] = json.loads(index_path.read_text()) if index_path.is_file() else []
    table = np.load(emb_path) if emb_path.is_file() else np.zeros((0, dim), np.float32)
    if len(stored) != len(table):  # a torn write: start over
        stored, table = [], np.zeros((0, dim), np.float32)
    row = {k: i for i, k in enumerate(stored)}
    new = sorted({k: x for k, x in zip(keys, items) if k not in row}.items())
    if new:
        fresh = compute([x for _, x in new]).numpy().astype(np.float32)
        stored += [k for k, _ in new]
        table = np.concatenate([table, fresh])
        # Write both files beside their targets, then rename: a crash leaves a consistent pair
        # or a length mismatch that the check above detects.
        np.save(root / "embeddings.tmp.npy", table)
        (root / "index.tmp.json").write_text(json.dumps(stored))
        os.replace(root / "embeddings.tmp.npy", emb_path)
        os.replace(root / "index.tmp.json", index_path)
        row = {k: i for i, k in enumerate(stored)}
    return torch.from_numpy(table[[row[k] for k in keys]])


def cached_text_embeddings(
    encoder, texts: list[str], cache_dir: str | Path | None, progress: bool = False
) -> torch.Tensor:
    """Raw embeddings (N, D) of `texts`, computing only those not yet in the cache."""
    compute = lambda xs: embed_texts(encoder, xs, progress=progress)  # noqa: E731
    if cache_dir is None:
        return compute(texts)
    root = Path(cache_dir) / encoder.fingerprint()[:32]
    return _cached(root, [text_key(t) for t in texts], texts, encoder.dim, compute)


def cached_audio_embeddings(
    encoder, paths: list[str], audio_cfg, cache_dir: str | Path | None, progress: bool = False
) -> torch.Tensor:
    """Raw audio embeddings (N, D), keyed by file content and the windowing settings."""
    from mats.encoders import embed_audio_items

    compute = lambda xs: embed_audio_items(encoder, xs, audio_cfg, progress=progress)  # noqa: E731
    if cache_dir is None:
        return compute(paths)
    settings = text_key(json.dumps(dataclasses.asdict(audio_cfg), sort_keys=True))[:8]
    root = Path(cache_dir) / f"audio-{encoder.fingerprint()[:24]}-{settings}"
    keys = [file_key(p) for p in tqdm(paths, desc="hashing audio", disable=not progress)]
    return _cached(root, keys, paths, encoder.dim, compute)
