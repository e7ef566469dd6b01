"""Training records held on disk and read on demand, so a corpus of millions of lines is never
held in RAM at once.

`RecordFile` writes the records of an iterator (mats.data.loading.iter_training_records) as one
JSON line each into an unnamed temporary file (unlinked when created: nothing is left behind,
even after kill -9) and keeps only small arrays per record: the byte offset of its line (int64),
its task (uint8, an index into TASKS) and the SHA-256 of its text (32 bytes, what the embedding
cache is keyed by) -- for records embedded by their audio (`audio=True`: the audio-supervised
twin), also the SHA-256 of its clip's bytes. A record is read back with one positioned read when
a batch needs it.
`LazyMap` and `Corpus` are views over such a sequence (texts, tokenised prompts, the tokenizer's
corpus) computed when read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mats.cache import KEY, hash_file
from mats.data.records import TASKS, AudioTIARecord

_TASK_IDS = {t: i for i, t in enumerate(TASKS)}
AUDIO_KEY_CACHE = 1024  # clip digests remembered while spilling (see RecordFile)


class RecordFile(Sequence[AudioTIARecord]):
    """Records spilled to a temporary file in `dir` (None: the system's), read by index.
    `audio=True`: every record must have a clip, whose bytes are hashed into `audio_keys`."""

    def __init__(
        self,
        records: Iterable[AudioTIARecord],
        dir: str | Path | None = None,
        progress: bool = False,
        audio: bool = False,
    ):
        self._file = tempfile.TemporaryFile(dir=dir)
        offsets, tasks, digests, clips = array("q", [0]), bytearray(), bytearray(), bytearray()
        # A clip's records usually follow one another (a scene's caption, questions, label), so
        # a small cache hashes each file about once without a table of every path.
        clip_digest = lru_cache(maxsize=AUDIO_KEY_CACHE)(lambda path: hash_file(path).digest())
        pos = 0
        # the bar only on a terminal: in a log, or before an error in a bad file, it is noise
        for rec in tqdm(records, desc="reading records", unit=" records", disable=None if progress else True):
            fields = [rec.text, rec.instruction, rec.answer, rec.task] + ([rec.audio] if rec.audio is not None else [])
            line = json.dumps(fields, ensure_ascii=False).encode() + b"\n"
            self._file.write(line)
            pos += len(line)
            offsets.append(pos)
            tasks.append(_TASK_IDS[rec.task])
            digests += hashlib.sha256(rec.text.encode("utf-8")).digest()
            if audio:
                if rec.audio is None:
                    raise ValueError(f"record {len(offsets) - 2} has no audio: {rec}")
                clips += clip_digest(rec.audio)
        self._file.flush()
        self._fd = self._file.fileno()
        self.offsets = np.frombuffer(offsets, dtype=np.int64)  # (N + 1,) line i is bytes [o[i], o[i + 1])
        self.task_ids = np.frombuffer(bytes(tasks), dtype=np.uint8)  # (N,)
        self.text_keys = np.frombuffer(bytes(digests), dtype=KEY)  # (N,)
        # (N,) SHA-256 of each record's clip (what the audio store is keyed by); None: not hashed
        self.audio_keys = np.frombuffer(bytes(clips), dtype=KEY) if audio else None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i) -> AudioTIARecord:
        i = int(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        i %= n
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return AudioTIARecord(*json.loads(self._read(start, stop - start)))

    def __iter__(self) -> Iterator[AudioTIARecord]:
        return (self[i] for i in range(len(self)))

    def _read(self, offset: int, size: int) -> bytes:
        if hasattr(os, "pread"):  # no shared file position: reads never disturb one another
            return os.pread(self._fd, size, offset)
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


class LazyMap(Sequence):
    """fn(items[i]) for each i, computed when read; the last `cache` results are kept (a batch
    reads its rows more than once: its token count, then its micro-batches)."""

    def __init__(self, items: Sequence, fn: Callable[[Any], Any], cache: int = 0) -> None:
        self.items, self.fn = items, fn
        self._get = lru_cache(maxsize=cache)(self._compute) if cache else self._compute

    def _compute(self, i: int):
        return self.fn(self.items[i])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self._get(int(i))

    def __iter__(self) -> Iterator:
        return (self.fn(x) for x in self.items)


class Corpus:
    """Every text of the records (text, instruction, answer of each), read when iterated: what a
    built-in LM trains its tokenizer on."""

    def __init__(self, records: Sequence[AudioTIARecord]) -> None:
        self.records = records

    def __len__(self) -> int:
        return 3 * len(self.records)

    def __iter__(self) -> Iterator[str]:
        for r in self.records:
            yield from (r.text, r.instruction, r.answer)


def first_rows(keys: np.ndarray) -> np.ndarray:
    """(U,) ascending: the index of the first occurrence of each distinct key in `keys` (N,)."""
    return np.sort(np.unique(keys, return_index=True)[1])
