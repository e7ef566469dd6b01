"""Importers from the real corpora's own formats into our record formats (see records.py).

Text-only training (AudioTIA records):
    import_audiocaps_csv, import_clotho_csv, import_musiccaps_csv, import_mats_json,
    import_caption_pairs, label_records (derived from AudioTIA records)
Benchmarks (benchmark lines with absolute audio paths):
    import_mmau_json, import_clotho_bench, import_audiocaps_bench, import_esc50_bench

Caption and classification records get an instruction drawn from a small fixed list of phrasings;
the choice is seeded by the record's index (and `seed`), so the corpus has variety but the same
file always gives the same records.

Benchmark audio is looked up under `audio_dir`: first at the path the metadata names, then by file
name, then by file stem with any common audio extension anywhere below `audio_dir` (datasets are
unpacked in many layouts: "Y<id>.wav", "<id>_<start>.flac", an extra "audio/" folder...). With
`require_audio=True` (the default) a missing file is an error naming the first one and the count;
`require_audio=False` keeps the lines with the path where the file was expected.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mats.data.instructions import IMPORTED as INSTRUCTIONS
from mats.data.records import AudioTIARecord, RecordError, read_jsonl, read_pairs

SOUND_CAPTION_INSTRUCTIONS = INSTRUCTIONS["sound_caption"]
MUSIC_CAPTION_INSTRUCTIONS = INSTRUCTIONS["music_caption"]
CLASSIFICATION_INSTRUCTIONS = INSTRUCTIONS["classification"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus")

# Task strings of the official MATS code (MATS-LLaMA/datasets/clap_dataset.py, `task_transpose`);
# anything else goes through keyword rules in `map_mats_task`.
OFFICIAL_MATS_TASKS = {
    "audiocaption": "sound_caption",
    "caption": "sound_caption",
    "musiccaption": "music_caption",
    "captioning": "music_caption",  # the official code files "captioning" under music
    "cla_label": "classification",
    "instrument_label": "classification",
    "genres_label": "classification",
    "vocal_label": "classification",
    "scene_label": "classification",
    "emotion event": "classification",
    "audio_qa": "aqa",
    "open-ended question": "aqa",
}


def instruction_for(task: str, index: int, seed: int = 0) -> str:
    """The fixed phrasing for record `index` of a caption/classification corpus."""
    phrasings = INSTRUCTIONS[task]
    return random.Random(seed * 1_000_003 + index).choice(phrasings)


# ----------------------------------------------------------------------------- CSV helpers


def _read_csv(path: str | Path, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts, after checking its header names every required column."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: tolerate a BOM
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise RecordError(f"{path}: CSV header lacks column(s) {missing}; found {list(header)}")
        return list(reader)


def _field(row: dict[str, str], column: str, path: Path, n: int) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RecordError(f"{path}: data row {n}: empty {column!r}")
    return value


def caption_records(captions: list[str], task: str = "sound_caption", seed: int = 0) -> list[AudioTIARecord]:
    """One `task` record per caption, its answer the caption, its instruction a fixed phrasing."""
    return [
        AudioTIARecord(text=c, instruction=instruction_for(task, i, seed), answer=c, task=task)
        for i, c in enumerate(captions)
    ]


# ----------------------------------------------------------------------------- AudioTIA


def _caption_column_csv(path: str | Path, task: str, seed: int) -> list[AudioTIARecord]:
    """A CSV with one non-empty `caption` per row -> one `task` record per row."""
    path = Path(path)
    rows = _read_csv(path, ["caption"])
    captions = [_field(r, "caption", path, n) for n, r in enumerate(rows, 1)]
    return caption_records(captions, task, seed)


def import_audiocaps_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    """AudioCaps CSV (audiocap_id, youtube_id, start_time, caption) -> sound_caption records."""
    return _caption_column_csv(path, "sound_caption", seed)


CLOTHO_CAPTION_COLUMNS = tuple(f"caption_{k}" for k in range(1, 6))


def import_clotho_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    """Clotho CSV (file_name, caption_1..caption_5) -> 5 sound_caption records per clip."""
    path = Path(path)
    rows = _read_csv(path, ["file_name", *CLOTHO_CAPTION_COLUMNS])
    captions = [_field(r, col, path, n) for n, r in enumerate(rows, 1) for col in CLOTHO_CAPTION_COLUMNS]
    return caption_records(captions, "sound_caption", seed)


def import_caption_pairs(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    """(audio, caption) pairs JSONL (SoundWorld `clap`) -> sound_caption records, text only:
    the audio is not read. The audio twin's captions, for a text-only model."""
    return caption_records(read_pairs(path)[1], "sound_caption", seed)


LABEL_RECORDS_PER_LABEL = 20  # 3,800 records for AudioTIA's 190 labels, about 3% of its records


def label_records(
    records: list[AudioTIARecord], per_label: int = LABEL_RECORDS_PER_LABEL, seed: int = 0
) -> list[AudioTIARecord]:
    """Classification records whose text is the bare label, `per_label` per label of `records`.

    A CLAP's zero-shot prompt is the label itself (mini-CLAP also trains on it), and as a
    classifier of audio embeddings it beats the descriptions written from the label
    (docs/experiments.md, "Why MATS-mini classifies below its CLAP"); these records teach the decoder that region and put it into Santa's
    memory. Each instruction is drawn (seeded) from the instructions that label's own records
    use, so "Which instrument is this?" stays with instruments.
    """
    instructions: dict[str, set[str]] = {}
    for r in records:
        if r.task == "classification":
            instructions.setdefault(r.answer, set()).add(r.instruction)
    if not instructions:
        raise RecordError("labels: the records hold no classification records to take labels from")
    rng = random.Random(seed)
    out = []
    for label in sorted(instructions):
        phrasings = sorted(instructions[label])
        out += [
            AudioTIARecord(text=label, instruction=rng.choice(phrasings), answer=label, task="classification")
            for _ in range(per_label)
        ]
    return out


def import_musiccaps_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    """MusicCaps CSV (ytid, ..., caption, ...) -> music_caption records."""
    return _caption_column_csv(path, "music_caption", seed)


def map_mats_task(value: str) -> str | None:
    """An official MATS task string -> our task name, or None when no rule applies.

    Known official strings first, then case-insensitive keywords: caption + music ->
    music_caption; caption -> sound_caption; choice/mcq -> mcq; classif/cls/label ->
    classification; qa/question -> aqa. (choice before question: "multiple choice question".)
    """
    v = value.strip().lower()
    if v in OFFICIAL_MATS_TASKS:
        return OFFICIAL_MATS_TASKS[v]
    if "caption" in v or "description" in v:
        return "music_caption" if "music" in v else "sound_caption"
    if "choice" in v or "mcq" in v:
        return "mcq"
    if "classif" in v or "cls" in v or "label" in v:
        return "classification"
    if "qa" in v or "question" in v:
        return "aqa"
    return None


def _load_json_or_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    with path.open(encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
        for n, obj in enumerate(data, 1):
            if not isinstance(obj, dict):
                raise RecordError(f"{path}: item {n}: expected a JSON object")
        return data
    return list(read_jsonl(path))


def import_mats_json(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    """The official MATS training JSON (a list, or JSONL) -> AudioTIA records.

    Each object: caption (-> text), output (-> answer), task (mapped by `map_mats_task`),
    instruction (for caption/classification tasks an empty one is replaced by a fixed phrasing).
    """
    path = Path(path)
    items = _load_json_or_jsonl(path)
    tasks = {}
    for obj in items:
        task = str(obj.get("task", ""))
        tasks.setdefault(task, map_mats_task(task) if task.strip() else None)
    unmapped = sorted(t for t, m in tasks.items() if m is None)
    if unmapped:
        raise RecordError(
            f"{path}: cannot map task value(s) {unmapped} to one of "
            "classification, sound_caption, music_caption, aqa, mcq"
        )
    out = []
    for n, obj in enumerate(items, 1):
        task = tasks[str(obj.get("task", ""))]
        instruction = str(obj.get("instruction") or "").strip()
        if not instruction and task in INSTRUCTIONS:
            instruction = instruction_for(task, n - 1, seed)
        try:
            out.append(
                AudioTIARecord(
                    text=str(obj.get("caption") or "").strip(),
                    instruction=instruction,
                    answer=str(obj.get("output") or "").strip(),
                    task=task,
                )
            )
        except RecordError as err:
            raise RecordError(f"{path}: item {n}: {err}") from None
    return out


# ----------------------------------------------------------------------------- audio lookup


class _AudioIndex:
    """Finds audio files under a directory by relative path, file name or stem."""

    def __init__(self, audio_dir: str | Path):
        self.root = Path(audio_dir).expanduser().resolve()
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        if self.root.is_dir():
            # Sorted walk: when a name occurs twice the choice is the same on every run.
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                for name in sorted(filenames):
                    p = Path(dirpath) / name
                    self.by_name.setdefault(name, p)
                    if p.suffix.lower() in AUDIO_EXTENSIONS:
                        self.by_stem.setdefault(p.stem, p)

    def find(self, rel: str, stems: Iterable[str] = ()) -> tuple[Path, bool]:
        """(path, found). Not found: the path under root where `rel` was expected."""
        direct = self.root / rel
        if direct.is_file():
            return direct.resolve(), True
        name = Path(rel).name
        if name in self.by_name:
            return self.by_name[name], True
        for stem in (Path(name).stem, *stems):
            if stem in self.by_stem:
                return self.by_stem[stem], True
        return direct.resolve(), False


def _check_audio(
    rows: list[dict[str, Any]],
    found: list[bool],
    source: Path,
    audio_dir: str | Path,
    require_audio: bool,
) -> list[dict[str, Any]]:
    missing = [r["audio"] for r, ok in zip(rows, found) if not ok]
    if missing and require_audio:
        raise RecordError(
            f"{source}: {len(missing)} of {len(rows)} audio files not found under {audio_dir} "
            f"(first: {missing[0]}); pass require_audio=False to keep the lines anyway"
        )
    return rows


# ----------------------------------------------------------------------------- benchmarks


def import_mmau_json(path: str | Path, audio_dir: str | Path, require_audio: bool = True) -> list[dict[str, Any]]:
    """MMAU (test-mini) JSON -> mcq lines.

    Keeps id, category, sub-category, difficulty and dataset; MMAU's own "task" (sound / music /
    speech) becomes "domain", since "task" is ours. `audio_id` is resolved against `audio_dir`
    (the folder holding "test-mini-audios/", or that folder itself).
    """
    path = Path(path)
    items = _load_json_or_jsonl(path)
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for n, obj in enumerate(items, 1):
        missing = [k for k in ("audio_id", "question", "choices", "answer") if k not in obj]
        if missing:
            raise RecordError(f"{path}: item {n} lacks {missing}")
        choices = [str(c) for c in obj["choices"]]
        answer = str(obj["answer"])
        if answer not in choices:
            raise RecordError(f"{path}: item {n}: answer {answer!r} is not one of its choices")
        audio, ok = index.find(str(obj["audio_id"]))
        row: dict[str, Any] = {
            "audio": str(audio),
            "task": "mcq",
            "question": str(obj["question"]),
            "choices": choices,
            "answer": answer,
        }
        if "id" in obj:
            row["id"] = str(obj["id"])
        for key in ("category", "sub-category", "difficulty", "dataset"):
            if key in obj:
                value = obj[key]
                # A few test-mini items hold the category as a one-element list.
                row[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if "task" in obj:
            row["domain"] = str(obj["task"])
        rows.append(row)
        found.append(ok)
    return _check_audio(rows, found, path, audio_dir, require_audio)


def import_clotho_bench(
    csv_path: str | Path, audio_dir: str | Path, require_audio: bool = True
) -> list[dict[str, Any]]:
    """Clotho CSV + audio folder -> sound_caption lines with the clip's 5 references."""
    csv_path = Path(csv_path)
    table = _read_csv(csv_path, ["file_name", *CLOTHO_CAPTION_COLUMNS])
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for n, r in enumerate(table, 1):
        name = _field(r, "file_name", csv_path, n)
        captions = [_field(r, col, csv_path, n) for col in CLOTHO_CAPTION_COLUMNS]
        audio, ok = index.find(name)
        rows.append({"audio": str(audio), "task": "sound_caption", "captions": captions, "id": name})
        found.append(ok)
    return _check_audio(rows, found, csv_path, audio_dir, require_audio)


def import_audiocaps_bench(
    csv_path: str | Path, audio_dir: str | Path, require_audio: bool = True
) -> list[dict[str, Any]]:
    """AudioCaps CSV + audio folder -> sound_caption lines, all captions of a clip grouped.

    A clip is (youtube_id, start_time), in order of first appearance. Its audio is looked up as
    "<youtube_id>", "Y<youtube_id>", "<youtube_id>_<start>", "Y<youtube_id>_<start>" or
    "<audiocap_id>" with any audio extension.
    """
    csv_path = Path(csv_path)
    table = _read_csv(csv_path, ["audiocap_id", "youtube_id", "start_time", "caption"])
    clips: dict[tuple[str, str], dict[str, Any]] = {}
    for n, r in enumerate(table, 1):
        key = (_field(r, "youtube_id", csv_path, n), _field(r, "start_time", csv_path, n))
        clip = clips.setdefault(key, {"captions": [], "audiocap_ids": []})
        clip["captions"].append(_field(r, "caption", csv_path, n))
        clip["audiocap_ids"].append(_field(r, "audiocap_id", csv_path, n))
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for (ytid, start), clip in clips.items():
        stems = [f"Y{ytid}", f"{ytid}_{start}", f"Y{ytid}_{start}", *clip["audiocap_ids"]]
        audio, ok = index.find(f"{ytid}.wav", stems)
        rows.append(
            {
                "audio": str(audio),
                "task": "sound_caption",
                "captions": clip["captions"],
                "id": f"{ytid}_{start}",
            }
        )
        found.append(ok)
    return _check_audio(rows, found, csv_path, audio_dir, require_audio)


def readable_label(label: str) -> str:
    """ESC-50 style class names in everyday words: "crying_baby" -> "crying baby"."""
    return " ".join(label.replace("_", " ").split())


def import_esc50_bench(
    csv_path: str | Path,
    audio_dir: str | Path,
    folds: Iterable[int] | None = None,
    require_audio: bool = True,
) -> list[dict[str, Any]]:
    """ESC-50 metadata + audio folder -> classification lines over all 50 readable labels.

    The candidate list is every class of the file in target order (not only those of the selected
    folds). `folds` keeps only those folds (1-5); None keeps all 2,000 clips.
    """
    csv_path = Path(csv_path)
    table = _read_csv(csv_path, ["filename", "fold", "target", "category"])
    names: dict[int, str] = {}
    for n, r in enumerate(table, 1):
        try:
            target = int(_field(r, "target", csv_path, n))
            fold = int(_field(r, "fold", csv_path, n))
        except ValueError:
            raise RecordError(f"{csv_path}: data row {n}: fold/target must be integers") from None
        r["_target"], r["_fold"] = target, fold
        label = readable_label(_field(r, "category", csv_path, n))
        if names.setdefault(target, label) != label:
            raise RecordError(f"{csv_path}: data row {n}: target {target} names two categories")
    labels = [names[t] for t in sorted(names)]
    keep = None
    if folds is not None:
        keep = {int(f) for f in folds}
        present = {r["_fold"] for r in table}
        if not keep <= present:
            raise RecordError(f"{csv_path}: fold(s) {sorted(keep - present)} not in {sorted(present)}")
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for n, r in enumerate(table, 1):
        if keep is not None and r["_fold"] not in keep:
            continue
        name = _field(r, "filename", csv_path, n)
        audio, ok = index.find(name)
        rows.append(
            {
                "audio": str(audio),
                "task": "classification",
                "label": names[r["_target"]],
                "labels": labels,
                "id": name,
                "fold": r["_fold"],
            }
        )
        found.append(ok)
    return _check_audio(rows, found, csv_path, audio_dir, require_audio)
