"""Resolve the `data.train` entries of a config into AudioTIA records, one at a time.

Each entry is KIND:ARGUMENT or a path:

    synthetic:N              N synthetic records (mats.data.synthetic)
    audiocaps:CSV            an AudioCaps CSV: one sound_caption record per row
    clotho:CSV               a Clotho CSV: five sound_caption records per clip
    musiccaps:CSV            the MusicCaps CSV: one music_caption record per clip
    mats:FILE                an official MATS training JSON (a list, or {"annotation": [...]}),
                             or the same objects as JSONL
    captions:PAIRS.jsonl     the captions of (audio, caption) pairs as caption records
    labels:AUDIOTIA.jsonl    the bare label as text for each classification label of that file
                             (importers.label_records)
    PATH.json                an official MATS JSON, as mats:PATH.json
    PATH                     any other path: an AudioTIA JSONL (records.py)

`iter_training_records` yields the records lazily -- JSONL line by line, CSV row by row; a JSON
document, the `labels:` file and `synthetic:N` are built whole -- so a corpus of millions of lines
is never held at once. Every entry is checked (its kind, N, that its file exists) before the first
record; errors in a file name the file and line ("<file>:<line>", or "<file>: item N" in a JSON
document).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from mats.data import importers
from mats.data.records import AudioTIARecord, RecordError, iter_audiotia, read_audiotia


def _synthetic(count: str) -> list[AudioTIARecord]:
    from mats.data.synthetic import synthetic_records  # the synthetic phrasings load only when used

    return synthetic_records(int(count))


# kind -> (what its argument is, records of that argument). "mats" and the JSONL reader also
# serve bare paths (PATH.json and PATH).
SPEC_KINDS: dict[str, tuple[str, Callable[[str], Iterable[AudioTIARecord]]]] = {
    "synthetic": ("N", _synthetic),
    "audiocaps": ("CSV", importers.iter_audiocaps_csv),
    "clotho": ("CSV", importers.iter_clotho_csv),
    "musiccaps": ("CSV", importers.iter_musiccaps_csv),
    "mats": ("FILE", importers.iter_mats_json),
    "captions": ("PAIRS.jsonl", importers.import_caption_pairs),
    "labels": ("AUDIOTIA.jsonl", lambda path: importers.label_records(read_audiotia(path))),
}
_AUDIOTIA = "audiotia"  # the kind of a bare path that is not .json

# "kind:" at the start of an entry: a lowercase word, so a path ("runs/a:b.jsonl") is not one.
_KIND_PREFIX = re.compile(r"([a-z][a-z0-9_-]*):(.*)", re.DOTALL)


def spec_kinds_text() -> str:
    """The accepted entry forms, for error messages."""
    forms = [f"{kind}:{arg}" for kind, (arg, _) in SPEC_KINDS.items()]
    return ", ".join(forms) + ", PATH.json (official MATS JSON) or PATH (AudioTIA .jsonl)"


def parse_training_spec(spec: str) -> tuple[str, str]:
    """A `data.train` entry -> (kind, argument), checked: a known kind, a whole N >= 1 for
    synthetic, an existing file for the others."""
    match = _KIND_PREFIX.fullmatch(spec)
    if match is None:
        kind, arg = ("mats" if spec.endswith(".json") else _AUDIOTIA), spec
    else:
        kind, arg = match.groups()
        if kind not in SPEC_KINDS:
            raise RecordError(
                f"data.train entry {spec!r}: unknown kind {kind!r}; an entry is one of {spec_kinds_text()}"
            )
    if kind == "synthetic":
        if not arg.isdigit() or int(arg) < 1:
            raise RecordError(f"data.train entry {spec!r}: synthetic:N needs a whole number N >= 1")
    elif not arg:
        raise RecordError(f"data.train entry {spec!r} names no file; an entry is one of {spec_kinds_text()}")
    else:
        path = Path(arg)
        if not path.is_file():
            why = "not a regular file" if path.exists() else "file not found"
            raise RecordError(f"{path}: {why} (data.train entry {spec!r})")
    return kind, arg


def iter_training_records(specs: list[str]) -> Iterator[AudioTIARecord]:
    """The records of every entry, in order, one at a time (see the module docstring).

    The entries are all checked when this is called, before any record is read."""
    if not specs:
        raise RecordError("data.train is empty: give AudioTIA .jsonl files (or synthetic:N)")
    parsed = [parse_training_spec(spec) for spec in specs]

    def records() -> Iterator[AudioTIARecord]:
        for kind, arg in parsed:
            yield from iter_audiotia(arg) if kind == _AUDIOTIA else SPEC_KINDS[kind][1](arg)

    return records()


def load_training_records(specs: list[str], max_records: int | None = None) -> list[AudioTIARecord]:
    """The first `max_records` records of `iter_training_records(specs)` (all when None)."""
    return list(islice(iter_training_records(specs), max_records or None))
