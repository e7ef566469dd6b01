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

Audio-supervised training (`data.audio_train`, the MATS-Audio twin) reads JSONL files whose
records carry audio (`iter_audio_records`): AudioTIA records with an "audio" field, or (audio,
caption) pairs (SoundWorld's clap/train.jsonl) as sound_caption records.

`iter_training_records` yields the records lazily -- JSONL line by line, CSV row by row; a JSON
document, the `labels:` file and `synthetic:N` are built whole -- so a corpus of millions of lines
is never held at once. Every entry is checked (its kind, N, that its file exists) before the first
record; errors in a file name the file and line ("<file>:<line>", or "<file>: item N" in a JSON
document).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from mats.data import importers
from mats.data.records import (
    AudioTIARecord,
    RecordError,
    audiotia_record,
    iter_audiotia,
    read_audiotia,
    read_jsonl_lines,
    resolve_audio,
)


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
        for spec, (kind, arg) in zip(specs, parsed):
            empty = True
            for record in iter_audiotia(arg) if kind == _AUDIOTIA else SPEC_KINDS[kind][1](arg):
                empty = False
                yield record
            if empty:  # an empty file (or one of blank lines) is a mistake, not a part of the corpus
                raise RecordError(f"{arg}: no records (data.train entry {spec!r}); is the file empty?")

    return records()


def load_training_records(specs: list[str], max_records: int | None = None) -> list[AudioTIARecord]:
    """The first `max_records` records of `iter_training_records(specs)` (all when None)."""
    return list(islice(iter_training_records(specs), max_records or None))


def iter_audio_records(paths: list[str]) -> Iterator[AudioTIARecord]:
    """The records of audio-supervised training files, in order, one at a time, each with the
    absolute path of its clip (relative ones are taken against the file's directory).

    A line with "task" is an AudioTIA record and must have "audio"; a line without is an
    {"audio", "caption"} pair, a sound_caption record whose instruction is drawn as
    `importers.caption_records` draws it for the pairs' captions in order (over all files). Every
    clip must exist. Errors say "<file>:<line>: why"; all files are checked to exist first."""
    if not paths:
        raise RecordError("data.audio_train is empty: give JSONL files of records with audio")
    for path in paths:
        if not Path(path).is_file():
            why = "not a regular file" if Path(path).exists() else "file not found"
            raise RecordError(f"{path}: {why} (data.audio_train entry)")

    def records() -> Iterator[AudioTIARecord]:
        pairs = 0  # the index of the next pair over all files: its instruction's seed
        for path in paths:
            base = os.path.abspath(Path(path).parent)
            for n, obj in read_jsonl_lines(path):
                where = f"{path}:{n}"
                if "task" in obj:
                    rec = audiotia_record(obj, where, base, require_audio=True)
                elif "caption" in obj and "audio" in obj:
                    caption, instruction = obj["caption"], importers.instruction_for("sound_caption", pairs)
                    try:
                        rec = AudioTIARecord(caption, instruction, caption, "sound_caption", audio=obj["audio"])
                    except RecordError as err:
                        raise RecordError(f"{where}: {err}") from None
                    rec.audio = resolve_audio(rec.audio, base)
                    pairs += 1
                else:
                    raise RecordError(
                        f"{where}: neither an AudioTIA record with audio ({{text, instruction, answer, "
                        f"task, audio}}) nor an (audio, caption) pair; keys: {sorted(obj)}"
                    )
                if not os.path.isfile(rec.audio):
                    raise RecordError(f"{where}: audio file not found: {rec.audio}")
                yield rec

    return records()
