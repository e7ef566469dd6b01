"""On-disk caches of frozen-encoder embeddings, keyed by content.

Text-only training never runs the text encoder inside a step: every distinct text is embedded
once and stored under `cache_dir/<encoder fingerprint>/`, keyed by the SHA-256 of the text, so
the cache survives reordering, new files and resumed runs. Audio embeddings (for the
audio-supervised twin) are keyed by the SHA-256 of the file's bytes, in a store named by the
windowing settings.

A store is a directory of append-only shards, so that it scales to millions of rows: each shard
is a pair of .npy files,
    NAME.emb.npy   (n, D) float32 rows
    NAME.keys.npy  (n,) SHA-256 digests (32 raw bytes), ascending: written last, it marks the shard complete
read as memory maps: a key is found by binary search in each shard's keys and its row read
without loading the rest. A shard is written beside its name and renamed into place, keys last,
so a crash (kill -9 in the middle of a chunk) leaves either a complete shard or one without its
keys, which is ignored: its rows are computed again. Processes add shards side by side (the ranks
of `mats embed`, two trainings sharing a cache) without coordinating; a key stored twice reads
from the first shard by name. The older one-file layout (index.json + embeddings.npy) is turned
into a shard the first time a store is opened.

Embeddings do not depend on which texts were embedded together (issue 17 item 12). An encoder's
output for a row changes in the last bits with the batch's size (a batch of one takes another
matmul path; on this CPU sizes 3 and 13 differ from 32 too), so a text embedded alone by one run
and in a full batch by another gave two trainings different weights. `embed_texts` therefore runs
every text in a batch of exactly `encoder.batch_size` rows, the last batch filled up with copies;
within a batch of that shape, a row's value depends only on its own text (checked on CPU: the
neighbours, their order and the padded length change nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

KEY = np.dtype("S32")  # a raw SHA-256 digest
CHUNK = 65536  # rows per shard when filling: the work an interruption can lose (per process)
_KEYS, _EMB = ".keys.npy", ".emb.npy"
_LEGACY_INDEX, _LEGACY_EMB = "index.json", "embeddings.npy"


class CacheError(Exception):
    """A cache directory that cannot be used, or rows that are not embeddings."""


def check_cache_dir(cache_dir: str | Path, key: str = "data.cache_dir") -> None:
    """CacheError naming `key` when `cache_dir` (or a folder above it) is not a directory:
    checked before any work, not when the first store is opened."""
    for path in (Path(cache_dir), *Path(cache_dir).parents):
        if path.exists():
            if not path.is_dir():
                raise CacheError(f"{key} {cache_dir}: not a directory ({path} is a file)")
            return


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_digests(texts: Iterable[str]) -> np.ndarray:
    """(N,) raw SHA-256 digests of `texts` (KEY): what a text store is keyed by."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype=KEY)


def hash_file(path: str | Path, h=None):
    """Feed a file's bytes into hash object `h` (default: a new SHA-256), 1 MiB at a time."""
    h = h if h is not None else hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def file_key(path: str | Path) -> str:
    return hash_file(path).hexdigest()


def embed_texts(encoder, texts: Sequence[str], progress: bool = False, bar=None) -> torch.Tensor:
    """Embed texts (B, D), each in a full batch of `encoder.batch_size` rows (see the module
    docstring: the value of a row then depends on its text alone). `bar`: a tqdm bar to advance
    by texts instead of a bar of its own."""
    size = encoder.batch_size
    chunks = []
    own = tqdm(total=len(texts), desc="embedding texts", disable=not progress or bar is not None)
    for i in range(0, len(texts), size):
        batch = list(texts[i : i + size])
        filled = batch + [batch[-1]] * (size - len(batch))  # copies: rows computed and dropped
        chunks.append(encoder.embed_text(filled)[: len(batch)].float())
        (bar or own).update(len(batch))
    own.close()
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.dim)


@contextmanager
def _exclusive(root: Path):
    """Hold an exclusive lock on `root` (POSIX; elsewhere no lock). Two runs sharing a cache
    (two trainings side by side) then take turns: the second finds the first's rows instead of
    computing them again."""
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


@dataclasses.dataclass
class Shard:
    name: str
    keys: np.ndarray  # (n,) KEY, ascending (a memory map)
    emb: np.ndarray  # (n, D) float32 (a memory map)


class EmbeddingStore:
    """The shards under `root` (rows of `dim` floats), memory-mapped; see the module docstring."""

    def __init__(self, root: str | Path, dim: int) -> None:
        self.root, self.dim = Path(root), int(dim)
        check_cache_dir(self.root, "the embedding store")
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / _LEGACY_INDEX).exists() or (self.root / _LEGACY_EMB).exists():
            with _exclusive(self.root):
                self._migrate()
        self.shards: list[Shard] = []
        self.refresh()

    def refresh(self) -> None:
        """Map the complete shards now on disk (those other processes added since, too)."""
        self.shards = [s for s in (self._open(p) for p in sorted(self.root.glob("*" + _KEYS))) if s is not None]

    def _open(self, keys_path: Path) -> Shard | None:
        name = keys_path.name[: -len(_KEYS)]
        try:
            keys = np.load(keys_path, mmap_mode="r")
            emb = np.load(self.root / (name + _EMB), mmap_mode="r")
        except (OSError, ValueError):  # the rows file missing or cut short: a torn shard
            return None
        if keys.dtype != KEY or emb.dtype != np.float32 or keys.ndim != 1 or emb.shape != (len(keys), self.dim):
            return None
        return Shard(name, keys, emb)

    def __len__(self) -> int:
        return sum(len(s.keys) for s in self.shards)

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard (N,) int32, row (N,) int64) of each key (N,) KEY; shard -1 where absent."""
        keys = np.asarray(keys, dtype=KEY)
        shard = np.full(len(keys), -1, np.int32)
        row = np.zeros(len(keys), np.int64)
        for s, sh in enumerate(self.shards):
            todo = np.flatnonzero(shard < 0)
            if not len(todo):
                break
            query = keys[todo]
            pos = np.searchsorted(sh.keys, query)  # (t,) binary search in the mapped keys
            hit = pos < len(sh.keys)
            hit[hit] = sh.keys[pos[hit]] == query[hit]
            shard[todo[hit]], row[todo[hit]] = s, pos[hit]
        return shard, row

    def gather(self, shard: np.ndarray, row: np.ndarray) -> np.ndarray:
        """(N, D) float32 rows at the locations (shard, row) (N,) each, read from the maps."""
        if len(shard) and shard.min() < 0:
            raise KeyError(f"{self.root}: {int((shard < 0).sum())} key(s) not in the store")
        out = np.empty((len(shard), self.dim), np.float32)
        for s in np.unique(shard):
            mine = shard == s
            out[mine] = self.shards[s].emb[row[mine]]
            if not np.isfinite(out[mine]).all():  # rows are trusted as stored otherwise: NaN would train
                bad = int((~np.isfinite(out[mine])).any(axis=1).sum())
                raise CacheError(
                    f"{self.root / (self.shards[s].name + _EMB)}: {bad} row(s) not finite (NaN or inf); "
                    "delete the shard and its .keys.npy to compute them again"
                )
        return out

    def add(self, keys: np.ndarray, emb: np.ndarray) -> None:
        """Write rows `emb` (n, D) under `keys` (n,) as a new shard (keys sorted; rows with them)."""
        keys = np.asarray(keys, dtype=KEY)
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.shape != (len(keys), self.dim):
            raise ValueError(f"{self.root}: {emb.shape} rows for {len(keys)} keys of dimension {self.dim}")
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"  # creation order, then unique
        for suffix, arr in ((_EMB, emb[order]), (_KEYS, keys[order])):  # keys last: the commit
            tmp = self.root / f".{name}{suffix}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, arr)
                f.flush()
                os.fsync(f.fileno())  # the rows reach the disk before the name that commits them
            os.replace(tmp, self.root / (name + suffix))
        self.refresh()

    def _migrate(self) -> None:
        """Turn the one-file layout (index.json: hex keys, embeddings.npy: rows) into a shard; a
        torn pair (lengths differ, unreadable) is dropped, its rows to be computed again."""
        index, emb_path = self.root / _LEGACY_INDEX, self.root / _LEGACY_EMB
        if not index.exists() and not emb_path.exists():
            return  # another process migrated it while this one waited for the lock
        try:
            keys = np.array([bytes.fromhex(k) for k in json.loads(index.read_text())], dtype=KEY)
            emb = np.load(emb_path)
        except (OSError, ValueError):
            keys, emb = None, None
        if keys is not None and emb.ndim == 2 and emb.shape == (len(keys), self.dim):
            self.add(keys, emb)
        index.unlink(missing_ok=True)
        emb_path.unlink(missing_ok=True)


def fill(
    store: EmbeddingStore,
    keys: np.ndarray,
    items: Sequence,
    compute: Callable[[list, tqdm], torch.Tensor],
    rank: int = 0,
    world: int = 1,
    chunk: int = CHUNK,
    progress: bool = False,
    desc: str = "embedding",
) -> int:
    """Compute and store the rows of the distinct, ascending `keys` (U,) missing from `store`;
    `items[j]` is what `compute(items, bar)` embeds for keys[j]. Process `rank` of `world` takes
    the keys at positions j % world == rank, so the processes of `mats embed` (or of a training)
    share the work without talking. Each `chunk` of rows becomes a shard as soon as it is done:
    an interrupted fill continues after its last complete chunk. Returns the rows computed."""
    shard, _ = store.locate(keys)
    todo = np.flatnonzero((shard < 0) & (np.arange(len(keys)) % world == rank))  # (m,) ascending keys
    with tqdm(total=len(todo), desc=desc, unit="row", disable=not progress or not len(todo)) as bar:
        for i in range(0, len(todo), chunk):
            part = todo[i : i + chunk]
            emb = compute([items[j] for j in part], bar)
            finite = torch.isfinite(emb).all(dim=1)  # (m,): never store a row that is not an embedding
            if not bool(finite.all()):
                first = items[int(part[int((~finite).nonzero()[0])])]
                raise CacheError(
                    f"{store.root}: the encoder gave a non-finite embedding (NaN or inf) for "
                    f"{int((~finite).sum())} item(s), e.g. {str(first)[:80]!r}"
                )
            store.add(keys[part], emb.numpy())
    return len(todo)


class CachedRows:
    """The rows of N items whose keys (N,) are all in `store`: each distinct key located once,
    `rows[idx]` gathered from the memory maps (what training indexes per batch)."""

    def __init__(self, store: EmbeddingStore, keys: np.ndarray) -> None:
        unique, self.inverse = np.unique(np.asarray(keys, dtype=KEY), return_inverse=True)  # (U,), (N,)
        self.store = store
        self.shard, self.row = store.locate(unique)  # (U,) each
        if len(self.shard) and self.shard.min() < 0:
            raise KeyError(f"{store.root}: {int((self.shard < 0).sum())} key(s) not in the store")

    def __len__(self) -> int:
        return len(self.inverse)

    def check(self, chunk: int = 8192) -> None:
        """Read each distinct row once, `chunk` at a time (each shard's map front to back), so
        that a shard holding rows that are not finite is named (CacheError, from gather) before
        a training starts, not at the batch that reads it."""
        order = np.lexsort((self.row, self.shard))  # (U,) by shard, then row
        for i in range(0, len(order), chunk):
            part = order[i : i + chunk]
            self.store.gather(self.shard[part], self.row[part])

    def __getitem__(self, idx) -> torch.Tensor:
        """(b, D) float32 rows of items `idx` (b,)."""
        u = self.inverse[np.asarray(idx, dtype=np.int64)]  # (b,)
        return torch.from_numpy(self.store.gather(self.shard[u], self.row[u]))


def text_store(encoder, cache_dir: str | Path) -> EmbeddingStore:
    return EmbeddingStore(Path(cache_dir) / encoder.fingerprint()[:32], encoder.dim)


def audio_store(encoder, audio_cfg, cache_dir: str | Path) -> EmbeddingStore:
    settings = dataclasses.asdict(audio_cfg)
    # an encoder whose audio embeddings depend on more than its weights (mini-CLAP's aisfx
    # precision) says so; without it the key is what it always was
    compute = getattr(encoder, "audio_cache_key", lambda: "")()
    if compute:
        settings["compute"] = compute
    settings = text_key(json.dumps(settings, sort_keys=True))[:8]
    return EmbeddingStore(Path(cache_dir) / f"audio-{encoder.fingerprint()[:24]}-{settings}", encoder.dim)


def cached_rows(
    store: EmbeddingStore,
    keys: np.ndarray,
    items: Sequence,
    compute: Callable[[list, tqdm], torch.Tensor],
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    desc: str = "embedding",
    chunk: int = CHUNK,
) -> int:
    """fill() the distinct keys of `keys` (N,) (items[i] for keys[i]); one process holds the
    store's lock while it computes, so a second process sharing the cache waits and finds the
    rows instead of computing them again (the ranks of one job split the work instead)."""
    unique, first = np.unique(np.asarray(keys, dtype=KEY), return_index=True)
    distinct = _Picked(items, first)
    if world > 1:
        return fill(store, unique, distinct, compute, rank, world, chunk, progress, desc)
    with _exclusive(store.root):
        store.refresh()
        return fill(store, unique, distinct, compute, chunk=chunk, progress=progress, desc=desc)


class _Picked(Sequence):
    """items[index[j]] for j: a view, so a lazy sequence of items is read only where needed."""

    def __init__(self, items: Sequence, index: np.ndarray) -> None:
        self.items, self.index = items, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j):
        return self.items[int(self.index[j])]


def text_embedder(encoder) -> Callable[[list, tqdm], torch.Tensor]:
    """What fill() runs on texts."""
    return lambda texts, bar: embed_texts(encoder, texts, bar=bar)


def cached_text_embeddings(
    encoder, texts: Sequence[str], cache_dir: str | Path | None, progress: bool = False
) -> torch.Tensor:
    """Raw embeddings (N, D) of `texts`, computing only those not yet in the cache."""
    if cache_dir is None:
        return embed_texts(encoder, texts, progress=progress)
    store = text_store(encoder, cache_dir)
    keys = text_digests(texts)
    cached_rows(store, keys, texts, text_embedder(encoder), progress=progress, desc="embedding texts")
    return CachedRows(store, keys)[np.arange(len(keys))]


def audio_digests(paths: Sequence[str], progress: bool = False) -> np.ndarray:
    """(N,) SHA-256 digests of the files' bytes (KEY)."""
    return np.array([hash_file(p).digest() for p in tqdm(paths, desc="hashing audio", disable=not progress)], KEY)


def audio_embedder(encoder, audio_cfg) -> Callable[[list, tqdm], torch.Tensor]:
    """What fill() runs on audio paths."""
    from mats.encoders import embed_audio_items

    def compute(paths: list, bar) -> torch.Tensor:
        out = embed_audio_items(encoder, paths, audio_cfg)
        bar.update(len(paths))
        return out

    return compute


def cached_audio_embeddings(
    encoder, paths: list[str], audio_cfg, cache_dir: str | Path | None, progress: bool = False
) -> torch.Tensor:
    """Raw audio embeddings (N, D), keyed by file content and the windowing settings."""
    from mats.encoders import embed_audio_items

    if cache_dir is None:
        return embed_audio_items(encoder, paths, audio_cfg, progress=progress)
    store = audio_store(encoder, audio_cfg, cache_dir)
    keys = audio_digests(paths, progress)
    cached_rows(store, keys, paths, audio_embedder(encoder, audio_cfg), progress=progress, desc="embedding audio")
    return CachedRows(store, keys)[np.arange(len(keys))]
