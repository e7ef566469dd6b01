"""Record formats shared by training, SoundWorld, the importers and the benchmarks.

AudioTIA (text-only training), one JSON object per line:
    {"text": str, "instruction": str, "answer": str, "task": TASK}
`text` is what the CLAP text encoder embeds in place of the audio (a caption, or a description
written from a label); `instruction` is what the LM is asked; `answer` is its target.
Optional: "audio", the clip the record is about. Text-only training ignores it; the
audio-supervised twin (data.audio_train) embeds that clip where text-only training embeds `text`.

Benchmark lines (audio + references), one JSON object per line, `"task"` says which fields:
    classification: {"audio", "task", "label": str | [str, ...], "labels": [candidates]}
    sound_caption / music_caption: {"audio", "task", "captions": [refs]}
    aqa:            {"audio", "task", "question", "answer", "answer_type": "yes_no" | "open"}
    mcq:            {"audio", "task", "question", "choices": [str], "answer"}
Optional everywhere: "id", "sources" (recording ids the clip was mixed from).
A relative "audio" path is resolved against the directory holding the JSONL file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TASKS = ("classification", "sound_caption", "music_caption", "aqa", "mcq")

BENCH_FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("audio", "label", "labels"),
    "sound_caption": ("audio", "captions"),
    "music_caption": ("audio", "captions"),
    "aqa": ("audio", "question", "answer"),
    "mcq": ("audio", "question", "choices", "answer"),
}


class RecordError(ValueError):
    """A data file holds a record that does not follow the format."""


@dataclass
class AudioTIARecord:
    text: str
    instruction: str
    answer: str
    task: str
    audio: str | None = None  # the record's clip (a path), for audio-supervised training

    def __post_init__(self) -> None:
        for name in ("text", "instruction", "answer", "task"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise RecordError(f"field {name!r} must be a non-empty string, got {value!r}")
            if not value.isascii():
                try:  # JSON's "\ud800" reads as a lone surrogate, which no file or tokenizer can take
                    value.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise RecordError(
                        f"field {name!r} is not valid Unicode text (a lone surrogate {value[err.start]!r})"
                    ) from None
        if self.task not in TASKS:
            raise RecordError(f"unknown task {self.task!r}; expected one of {TASKS}")
        if self.audio is not None and (not isinstance(self.audio, str) or not self.audio.strip()):
            raise RecordError(f"field 'audio' must be a non-empty string (a path), got {self.audio!r}")

    def to_dict(self) -> dict[str, str]:
        """The JSON object of the record; "audio" only where there is one (a text-only record
        writes the four fields it always had)."""
        d = asdict(self)
        if self.audio is None:
            del d["audio"]
        return d


def mcq_prompt(question: str, choices: Iterable[str]) -> str:
    """The MMAU-style multiple-choice instruction used in the paper."""
    options = " ".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
    return f"{question} Select one option: {options} Respond with exactly one of the options above."


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped). Errors say "<file>:<line>: why"."""
    for _, obj in read_jsonl_lines(path):
        yield obj


def read_jsonl_lines(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number in the file, object) for each non-blank line; blank lines are counted, so the
    number is the one an editor shows."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found" if not path.exists() else f"{path}: not a regular file")
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                # line 1 may start with a byte-order mark (Windows editors write one): not JSON
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise RecordError(f"{path}:{n}: not UTF-8 text (a binary file?)") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as err:
                reason = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
                raise RecordError(f"{path}:{n}: not JSON ({reason})") from None
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{n}: expected a JSON object")
            yield n, obj


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file then rename); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def resolve_audio(audio: str, base: str) -> str:
    """A record's "audio" path as an absolute one: a relative path is taken against `base` (the
    absolute directory of the JSONL holding it). No file-system lookup: a million records cost
    a million string joins, not a million syscalls."""
    return audio if os.path.isabs(audio) else os.path.normpath(os.path.join(base, audio))


def audiotia_record(obj: dict[str, Any], where: str, base: str, require_audio: bool = False) -> AudioTIARecord:
    """The AudioTIA record of JSON object `obj` (line `where` = "<file>:<line>" of a file in
    directory `base`), its "audio" made absolute. `require_audio`: a record without one is an
    error (audio-supervised training)."""
    audio = obj.get("audio")
    if require_audio and audio is None:
        raise RecordError(
            f"{where}: an audio-supervised record needs 'audio' (its clip, relative to the file's directory)"
        )
    try:
        rec = AudioTIARecord(*(obj.get(k) for k in ("text", "instruction", "answer", "task")), audio=audio)
    except RecordError as err:
        raise RecordError(f"{where}: {err}") from None
    if rec.audio is not None:
        rec.audio = resolve_audio(rec.audio, base)
    return rec


def iter_audiotia(path: str | Path, require_audio: bool = False) -> Iterator[AudioTIARecord]:
    """The records of an AudioTIA JSONL, read line by line (a file of millions of lines is never
    held whole); a relative "audio" is resolved against the file's directory. Errors say
    "<file>:<line>: why"."""
    base = os.path.abspath(Path(path).parent)
    for n, obj in read_jsonl_lines(path):
        yield audiotia_record(obj, f"{path}:{n}", base, require_audio)


def read_audiotia(path: str | Path) -> list[AudioTIARecord]:
    return list(iter_audiotia(path))


def validate_bench_line(obj: dict[str, Any], where: str = "") -> dict[str, Any]:
    task = obj.get("task")
    if task not in BENCH_FIELDS:
        raise RecordError(f"{where}: unknown task {task!r}; expected one of {tuple(BENCH_FIELDS)}")
    missing = [k for k in BENCH_FIELDS[task] if k not in obj]
    if missing:
        raise RecordError(f"{where}: {task} line lacks {missing}")
    if "question" in BENCH_FIELDS[task] and not (isinstance(obj["question"], str) and obj["question"].strip()):
        # caught here, naming the line, rather than by the model midway through an evaluation
        raise RecordError(f"{where}: {task} line has an empty question (got {obj['question']!r})")
    return obj


def read_bench(path: str | Path) -> list[dict[str, Any]]:
    """Read a benchmark JSONL; relative audio paths become absolute (against the file's dir)."""
    path = Path(path)
    rows = []
    for n, obj in read_jsonl_lines(path):
        validate_bench_line(obj, f"{path}:{n}")
        audio = Path(obj["audio"])
        if not audio.is_absolute():
            obj["audio"] = str((path.parent / audio).resolve())
        rows.append(obj)
    return rows


def read_pairs(path: str | Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(audio paths, captions) from a JSONL of {"audio", "caption"} pairs (audio resolved)."""
    path = Path(path)
    audio, captions = [], []
    for n, obj in read_jsonl_lines(path):
        if "audio" not in obj or "caption" not in obj:
            raise RecordError(f"{path}:{n}: a pair needs 'audio' and 'caption'")
        a = Path(obj["audio"])
        audio.append(str(a if a.is_absolute() else (path.parent / a).resolve()))
        captions.append(obj["caption"])
        if limit and len(audio) >= limit:
            break
    return audio, captions
