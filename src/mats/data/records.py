"""Record formats shared by training, SoundWorld, the importers and the benchmarks.

AudioTIA (text-only training), one JSON object per line:
    {"text": str, "instruction": str, "answer": str, "task": TASK}
`text` is what the CLAP text encoder embeds in place of the audio (a caption, or a description
written from a label); `instruction` is what the LM is asked; `answer` is its target.

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

    def __post_init__(self) -> None:
        for name in ("text", "instruction", "answer", "task"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise RecordError(f"field {name!r} must be a non-empty string, got {value!r}")
        if self.task not in TASKS:
            raise RecordError(f"unknown task {self.task!r}; expected one of {TASKS}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


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
                line = raw.decode("utf-8").strip()
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


def iter_audiotia(path: str | Path) -> Iterator[AudioTIARecord]:
    """The records of an AudioTIA JSONL, read line by line (a file of millions of lines is never
    held whole). Errors say "<file>:<line>: why"."""
    for n, obj in read_jsonl_lines(path):
        try:
            yield AudioTIARecord(**{k: obj.get(k) for k in ("text", "instruction", "answer", "task")})
        except RecordError as err:
            raise RecordError(f"{path}:{n}: {err}") from None


def read_audiotia(path: str | Path) -> list[AudioTIARecord]:
    return list(iter_audiotia(path))


def validate_bench_line(obj: dict[str, Any], where: str = "") -> dict[str, Any]:
    task = obj.get("task")
    if task not in BENCH_FIELDS:
        raise RecordError(f"{where}: unknown task {task!r}; expected one of {tuple(BENCH_FIELDS)}")
    missing = [k for k in BENCH_FIELDS[task] if k not in obj]
    if missing:
        raise RecordError(f"{where}: {task} line lacks {missing}")
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
