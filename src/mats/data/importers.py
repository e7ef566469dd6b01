"""Importers from the real corpora's own formats into our record formats (see records.py).

Text-only training (AudioTIA records):
    iter_audiocaps_csv, iter_clotho_csv, iter_musiccaps_csv, iter_mats_json (one record at a
    time: CSV row by row, JSONL line by line; a JSON document is parsed whole), and their lists
    import_audiocaps_csv, import_clotho_csv, import_musiccaps_csv, import_mats_json;
    import_caption_pairs, label_records (derived from AudioTIA records)
Benchmarks (benchmark lines with absolute audio paths):
    import_mmau_json, import_clotho_bench, import_audiocaps_bench, import_esc50_bench,
    import_musiccaps_bench, import_mats_bench (an official-format MATS test JSON)

Errors name the file and where in it: "<file>:<line>" for CSV rows (the line the row starts
on: a quoted caption may span lines) and JSONL, "<file>: item N" in a JSON document.

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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mats.data.instructions import IMPORTED as INSTRUCTIONS
from mats.data.records import TASKS, AudioTIARecord, RecordError, read_jsonl_lines, read_pairs

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

# A CSV row: where it starts ("<file>:<line>", for errors) and its cells by column name.
CsvRow = tuple[str, dict[str, str]]


def _decoded_lines(path: Path, f: Iterable[bytes]) -> Iterator[str]:
    """The lines of a binary file as text, line ends kept (as csv wants them), decoded one line
    at a time so that a bad byte is reported on its own line."""
    for n, raw in enumerate(f, 1):
        try:
            yield raw.decode("utf-8-sig" if n == 1 else "utf-8")  # -sig: tolerate a BOM
        except UnicodeDecodeError:
            raise RecordError(f"{path}:{n}: not UTF-8 text (a binary file?)") from None


def _iter_csv(path: str | Path, required: Iterable[str]) -> Iterator[CsvRow]:
    """The rows of a CSV file one at a time, after checking its header names every required
    column. Blank lines are skipped; a row shorter than the header lacks the missing columns."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    with path.open("rb") as f:
        reader = csv.reader(_decoded_lines(path, f))
        start = 1  # the line the next row starts on
        try:
            header = next(reader, [])
            missing = [c for c in required if c not in header]
            if missing:
                raise RecordError(f"{path}: CSV header lacks column(s) {missing}; found {header}")
            start = reader.line_num + 1
            for cells in reader:
                if cells:
                    yield f"{path}:{start}", dict(zip(header, cells))
                start = reader.line_num + 1
        except csv.Error as err:
            raise RecordError(f"{path}:{start}: not CSV ({err})") from None


def _read_csv(path: str | Path, required: Iterable[str]) -> list[CsvRow]:
    return list(_iter_csv(path, required))


def _field(row: dict[str, str], column: str, where: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RecordError(f"{where}: empty {column!r}")
    return value


def _caption_record(caption: str, task: str, index: int, seed: int) -> AudioTIARecord:
    return AudioTIARecord(text=caption, instruction=instruction_for(task, index, seed), answer=caption, task=task)


def caption_records(captions: list[str], task: str = "sound_caption", seed: int = 0) -> list[AudioTIARecord]:
    """One `task` record per caption, its answer the caption, its instruction a fixed phrasing."""
    return [_caption_record(c, task, i, seed) for i, c in enumerate(captions)]


# ----------------------------------------------------------------------------- AudioTIA


def _iter_caption_csv(
    path: str | Path, required: Iterable[str], columns: Iterable[str], task: str, seed: int
) -> Iterator[AudioTIARecord]:
    """One `task` record per caption cell (`columns`, each non-empty), row by row: the records
    `caption_records` gives for the same captions in that order."""
    columns = tuple(columns)
    index = 0
    for where, row in _iter_csv(path, required):
        for column in columns:
            yield _caption_record(_field(row, column, where), task, index, seed)
            index += 1


def iter_audiocaps_csv(path: str | Path, seed: int = 0) -> Iterator[AudioTIARecord]:
    """AudioCaps CSV (audiocap_id, youtube_id, start_time, caption) -> sound_caption records."""
    return _iter_caption_csv(path, ["caption"], ["caption"], "sound_caption", seed)


def import_audiocaps_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    return list(iter_audiocaps_csv(path, seed))


CLOTHO_CAPTION_COLUMNS = tuple(f"caption_{k}" for k in range(1, 6))


def iter_clotho_csv(path: str | Path, seed: int = 0) -> Iterator[AudioTIARecord]:
    """Clotho CSV (file_name, caption_1..caption_5) -> 5 sound_caption records per clip."""
    return _iter_caption_csv(
        path, ["file_name", *CLOTHO_CAPTION_COLUMNS], CLOTHO_CAPTION_COLUMNS, "sound_caption", seed
    )


def import_clotho_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    return list(iter_clotho_csv(path, seed))


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


def iter_musiccaps_csv(path: str | Path, seed: int = 0) -> Iterator[AudioTIARecord]:
    """MusicCaps CSV (ytid, ..., caption, ...) -> music_caption records."""
    return _iter_caption_csv(path, ["caption"], ["caption"], "music_caption", seed)


def import_musiccaps_csv(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    return list(iter_musiccaps_csv(path, seed))


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


# A JSON item: where it is ("<file>:<line>" in JSONL, "<file>: item N" in a JSON document) and
# the object.
JsonItem = tuple[str, dict[str, Any]]


def _is_jsonl(path: Path) -> bool:
    """JSON Lines rather than one JSON document, told by the first non-blank line: one whole
    object that is not the MATS wrapper {"annotation": [...]} (json.dump writes that wrapper on
    one line too). An empty file is JSONL with no items."""
    with path.open("rb") as f:
        head = f.read(64).lstrip()
        if not head.startswith(b"{"):
            return not head
        f.seek(0)
        line = b""
        while not line:
            line = f.readline().strip()
    try:
        first = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False  # the first line of an indented object
    return isinstance(first, dict) and "annotation" not in first


def _json_items(path: Path) -> Iterable[JsonItem]:
    """The objects of a JSON document -- a list, or the official MATS layout {"annotation": [...]}
    -- parsed whole (a list is returned), or of a JSONL file, read line by line (an iterator)."""
    if not path.is_file():
        raise RecordError(f"{path}: file not found")
    if _is_jsonl(path):
        return ((f"{path}:{n}", obj) for n, obj in read_jsonl_lines(path))
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text (a binary file?)") from None
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict) and "annotation" in data:
        data = data["annotation"]
    if not isinstance(data, list):
        found = f"an object with keys {sorted(data)[:8]}" if isinstance(data, dict) else type(data).__name__
        raise RecordError(f'{path}: expected a list of objects or {{"annotation": [...]}}, found {found}')
    for n, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise RecordError(f"{path}: item {n}: expected a JSON object")
    return [(f"{path}: item {n}", obj) for n, obj in enumerate(data, 1)]


def _map_tasks(values: Iterable[str], where: str, known: dict[str, str]) -> None:
    """Add each official task string's mapping to `known`; the values no rule maps are an error
    naming all of them."""
    unmapped = []
    for value in dict.fromkeys(values):
        if value not in known:
            mapped = map_mats_task(value) if value.strip() else None
            if mapped is None:
                unmapped.append(value)
            else:
                known[value] = mapped
    if unmapped:
        raise RecordError(f"{where}: cannot map task value(s) {sorted(unmapped)} to one of {', '.join(TASKS)}")


def _official_task(obj: dict[str, Any], where: str, known: dict[str, str]) -> str:
    value = str(obj.get("task", ""))
    _map_tasks([value], where, known)
    return known[value]


def _official_text(obj: dict[str, Any], key: str, where: str) -> str:
    """A text field of an official item, stripped ("" when absent or null); any other type is an
    error (str() would train on "['a dog']" or "5" silently)."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{where}: field {key!r} must be a string, got {value!r}")
    return value.strip()


def iter_mats_json(path: str | Path, seed: int = 0) -> Iterator[AudioTIARecord]:
    """The official MATS training JSON (a list, or {"annotation": [...]}; or JSONL) -> AudioTIA
    records, one at a time.

    Each object: caption (-> text), output (-> answer), task (mapped by `map_mats_task`),
    instruction (for caption/classification tasks an empty one is replaced by a fixed phrasing).
    A JSON document's task values are all checked before the first record (the error names every
    one no rule maps); JSONL's line by line.
    """
    path = Path(path)
    items = _json_items(path)
    known: dict[str, str] = {}
    if isinstance(items, list):
        _map_tasks((str(obj.get("task", "")) for _, obj in items), str(path), known)
    for n, (where, obj) in enumerate(items):
        task = _official_task(obj, where, known)
        instruction = _official_text(obj, "instruction", where)
        if not instruction and task in INSTRUCTIONS:
            instruction = instruction_for(task, n, seed)
        text, answer = _official_text(obj, "caption", where), _official_text(obj, "output", where)
        try:
            record = AudioTIARecord(text=text, instruction=instruction, answer=answer, task=task)
        except RecordError as err:
            raise RecordError(f"{where}: {err}") from None
        yield record


def import_mats_json(path: str | Path, seed: int = 0) -> list[AudioTIARecord]:
    return list(iter_mats_json(path, seed))


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


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def import_mmau_json(path: str | Path, audio_dir: str | Path, require_audio: bool = True) -> list[dict[str, Any]]:
    """MMAU (test-mini) JSON -> mcq lines.

    Keeps id, category, sub-category, difficulty and dataset; MMAU's own "task" (sound / music /
    speech) becomes "domain", since "task" is ours. `audio_id` is resolved against `audio_dir`
    (the folder holding "test-mini-audios/", or that folder itself).
    """
    path = Path(path)
    items = _json_items(path)
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for where, obj in items:
        missing = [k for k in ("audio_id", "question", "choices", "answer") if k not in obj]
        if missing:
            raise RecordError(f"{where} lacks {missing}")
        choices = [str(c) for c in obj["choices"]]
        answer = str(obj["answer"])
        if answer not in choices:
            raise RecordError(f"{where}: answer {answer!r} is not one of its choices")
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
                # A few test-mini items hold the category as a one-element list; a null (a
                # sub-category MMAU leaves empty) stays null, not the text "None".
                row[key] = ", ".join(map(str, value)) if isinstance(value, list) else _text_or_none(value)
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
    for where, r in table:
        name = _field(r, "file_name", where)
        captions = [_field(r, col, where) for col in CLOTHO_CAPTION_COLUMNS]
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
    for where, r in table:
        key = (_field(r, "youtube_id", where), _field(r, "start_time", where))
        clip = clips.setdefault(key, {"captions": [], "audiocap_ids": []})
        clip["captions"].append(_field(r, "caption", where))
        clip["audiocap_ids"].append(_field(r, "audiocap_id", where))
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
    for where, r in table:
        try:
            target = int(_field(r, "target", where))
            fold = int(_field(r, "fold", where))
        except ValueError:
            raise RecordError(f"{where}: fold/target must be integers") from None
        r["_target"], r["_fold"] = target, fold
        label = readable_label(_field(r, "category", where))
        if names.setdefault(target, label) != label:
            raise RecordError(f"{where}: target {target} names two categories")
    labels = [names[t] for t in sorted(names)]
    keep = None
    if folds is not None:
        keep = {int(f) for f in folds}
        present = {r["_fold"] for _, r in table}
        if not keep <= present:
            raise RecordError(f"{csv_path}: fold(s) {sorted(keep - present)} not in {sorted(present)}")
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for where, r in table:
        if keep is not None and r["_fold"] not in keep:
            continue
        name = _field(r, "filename", where)
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


MUSICCAPS_SPLITS = {"eval": "True", "train": "False"}  # split -> is_audioset_eval


def import_musiccaps_bench(
    csv_path: str | Path, audio_dir: str | Path, split: str | None = None, require_audio: bool = True
) -> list[dict[str, Any]]:
    """MusicCaps CSV + audio folder -> music_caption lines, one per clip with its one caption.

    `split="eval"` keeps the clips with is_audioset_eval True (2,858: the test set MusicCaps
    captioning papers report on), "train" the others, None all 5,521. A clip's audio is looked up
    as "<ytid>", "Y<ytid>", "<ytid>_<start_s>", "Y<ytid>_<start_s>" or "[<ytid>]-[<start_s>-<end_s>]"
    (the names common MusicCaps downloaders write) with any audio extension.
    """
    csv_path = Path(csv_path)
    if split is not None and split not in MUSICCAPS_SPLITS:
        raise RecordError(f"{csv_path}: unknown MusicCaps split {split!r}; expected one of {sorted(MUSICCAPS_SPLITS)}")
    required = ["ytid", "start_s", "end_s", "caption"] + (["is_audioset_eval"] if split else [])
    table = _read_csv(csv_path, required)
    index = _AudioIndex(audio_dir)
    rows, found = [], []
    for where, r in table:
        if split is not None and _field(r, "is_audioset_eval", where) != MUSICCAPS_SPLITS[split]:
            continue
        ytid, start, end = (_field(r, col, where) for col in ("ytid", "start_s", "end_s"))
        stems = [f"Y{ytid}", f"{ytid}_{start}", f"Y{ytid}_{start}", f"[{ytid}]-[{start}-{end}]"]
        audio, ok = index.find(f"{ytid}.wav", stems)
        rows.append(
            {
                "audio": str(audio),
                "task": "music_caption",
                "captions": [_field(r, "caption", where)],
                "id": f"{ytid}_{start}",
            }
        )
        found.append(ok)
    return _check_audio(rows, found, csv_path, audio_dir, require_audio)


YES_NO = ("yes", "no")


def import_mats_bench(path: str | Path, audio_dir: str | Path, require_audio: bool = True) -> list[dict[str, Any]]:
    """An official-format MATS test JSON (a list, or {"annotation": [...]}; or JSONL) + audio
    folder -> benchmark lines.

    Each item, as the official code reads it: audio_id (the clip's path under the data root),
    task (mapped by `map_mats_task`), instruction (the question), output (the reference). By task:

        captions:       one line per (clip, task), every output its references, in order of
                        first appearance (a test file repeats a clip once per reference caption)
        classification: label = output; the candidates are every distinct output of the items
                        with the same task string (one label vocabulary per string: cla_label,
                        genres_label, ...), in order of first appearance
        aqa:            question = instruction, answer = output; answer_type "yes_no" when the
                        answer is yes or no, else "open"
        mcq (any item with "choices", or a task mapped to mcq): question, choices, answer (one
                        of the choices)

    The clip is looked up under `audio_dir` (the official `root`) as `_AudioIndex` does.
    """
    path = Path(path)
    items = _json_items(path)
    index = _AudioIndex(audio_dir)
    known: dict[str, str] = {}
    if isinstance(items, list):  # a JSON document: every unmapped task string named at once
        _map_tasks((str(obj.get("task", "")) for _, obj in items if "choices" not in obj), str(path), known)
    rows: list[dict[str, Any]] = []
    found: list[bool] = []
    captions: dict[tuple[str, str], dict[str, Any]] = {}  # (audio_id, task) -> its line
    vocab: dict[str, dict[str, None]] = {}  # classification task string -> its labels, ordered
    classified: list[tuple[dict[str, Any], str]] = []  # (line, its task string)
    for where, obj in items:
        missing = [k for k in ("audio_id", "task", "output") if k not in obj]
        if missing:
            raise RecordError(f"{where} lacks {missing}")
        task = "mcq" if "choices" in obj else _official_task(obj, where, known)
        audio_id, output = str(obj["audio_id"]), str(obj["output"]).strip()
        if not output:
            raise RecordError(f"{where}: empty 'output'")
        if task in ("sound_caption", "music_caption") and (audio_id, task) in captions:
            captions[(audio_id, task)]["captions"].append(output)
            continue
        audio, ok = index.find(audio_id)
        row: dict[str, Any] = {"audio": str(audio), "task": task}
        if task in ("sound_caption", "music_caption"):
            row["captions"] = [output]
            captions[(audio_id, task)] = row
        elif task == "classification":
            row["label"] = output
            vocab.setdefault(str(obj["task"]), {})[output] = None
            classified.append((row, str(obj["task"])))
        else:
            question = str(obj.get("instruction") or obj.get("question") or "").strip()
            if not question:
                raise RecordError(f"{where}: an {task} item needs its question in 'instruction'")
            row["question"] = question
            if task == "mcq":
                if not isinstance(obj.get("choices"), list) or not obj["choices"]:
                    raise RecordError(f"{where}: an mcq item needs a non-empty list 'choices'")
                row["choices"] = [str(c).strip() for c in obj["choices"]]
                if output not in row["choices"]:
                    raise RecordError(f"{where}: output {output!r} is not one of its choices")
            row["answer"] = output
            if task == "aqa":
                row["answer_type"] = "yes_no" if output.lower().rstrip(".") in YES_NO else "open"
        row["id"] = audio_id
        rows.append(row)
        found.append(ok)
    for row, task_string in classified:
        row["labels"] = list(vocab[task_string])
    return _check_audio(rows, found, path, audio_dir, require_audio)
