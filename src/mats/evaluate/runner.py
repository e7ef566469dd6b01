"""Run a model over a benchmark and score it: `evaluate(model, bench) -> {"bench", "n", "metrics"}`.

The model is anything with the four verbs of the user API (the MATS model, a zero-shot CLAP
baseline, a fake in tests):

    model.caption(audio: list) -> list[str]
    model.ask(audio: list, questions: list[str]) -> list[str]
    model.classify(audio: list, labels: list[str]) -> list[{"label": str, "scores": {label: float}}]
    model.choose(audio: list, questions: list[str], choices: list[list[str]]) -> list[str]

Rows are grouped by task (a benchmark may mix tasks) and, for classification, by identical
candidate label sets (one `classify` call shape per set). Metrics, per task key:

    classification: accuracy (a hit is any gold label), plus mAP over the label set's scores when
                    some gold is multi-label (several label sets: per-set mAP and their row-weighted
                    mean)
    sound_caption / music_caption: caption_metrics (BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE/SPIDEr)
    aqa:            accuracy over all rows (a "yes_no" row judged by its parsed yes/no, any
                    other by normalised exact match); with both kinds present, "yes_no"
                    (binary_accuracy) and "open" (aqa_accuracy) sub-dicts
    mcq:            accuracy, and per-value accuracy for "category", "domain", "difficulty" fields

With `out_dir`, per-item predictions go to out_dir/predictions.jsonl (each benchmark row plus
"prediction", and "scores"/"correct" where they apply) and the result to out_dir/metrics.json.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mats.data.records import write_jsonl
from mats.evaluate import metrics as M
from mats.evaluate.benchmarks import load_benchmark
from mats.matching import normalize_text

BREAKDOWN_FIELDS = ("category", "domain", "difficulty")


class EvaluationError(RuntimeError):
    """The model's answers do not fit the benchmark (wrong count or shape)."""


def _batched(
    fn: Callable[..., list],
    n: int,
    args: Sequence[Sequence],
    batch_size: int,
    bar: tqdm,
    what: str,
) -> list:
    """Call fn on consecutive slices of the parallel lists in `args`; check each answer count."""
    out: list = []
    for start in range(0, n, batch_size):
        chunk = [a[start : start + batch_size] for a in args]
        answers = list(fn(*chunk))
        if len(answers) != len(chunk[0]):
            raise EvaluationError(f"{what} returned {len(answers)} answers for {len(chunk[0])} inputs")
        out.extend(answers)
        bar.update(len(chunk[0]))
    return out


def _gold_list(label: str | Sequence[str]) -> list[str]:
    return [label] if isinstance(label, str) else list(label)


def _breakdown(rows: list[dict], correct: list[bool]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for field in BREAKDOWN_FIELDS:
        groups: dict[str, list[bool]] = defaultdict(list)
        for row, ok in zip(rows, correct):
            if field in row:
                groups[str(row[field])].append(ok)
        if groups:
            out[f"by_{field}"] = {k: {"accuracy": sum(v) / len(v), "n": len(v)} for k, v in sorted(groups.items())}
    return out


def _run_classification(model, idx: list[int], rows: list[dict], preds: dict, bs: int, bar) -> dict:
    by_set: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i in idx:
        by_set[tuple(rows[i]["labels"])].append(i)
    correct_all: list[bool] = []
    maps: list[tuple[float, int]] = []
    for labels, members in by_set.items():
        audio = [rows[i]["audio"] for i in members]
        labels_list = list(labels)
        answers = _batched(
            lambda a, labels_list=labels_list: model.classify(a, labels_list),
            len(members),
            [audio],
            bs,
            bar,
            "model.classify",
        )
        golds = [_gold_list(rows[i]["label"]) for i in members]
        gold_sets = [M.gold_set(g) for g in golds]  # normalised, built once per row
        for i, ans, gold in zip(members, answers, gold_sets):
            ok = normalize_text(ans["label"]) in gold
            preds[i] = {"prediction": ans["label"], "scores": ans["scores"], "correct": ok}
            if "text" in ans:  # the generated text the label was matched from
                preds[i]["text"] = ans["text"]
            correct_all.append(ok)
        if any(len(g) > 1 for g in golds):
            # Scores aligned to the candidate order; targets matched by normalised label text.
            try:
                scores = np.array(  # (N, C) in candidate order
                    [[float(a["scores"][lab]) for lab in labels_list] for a in answers]
                )
            except KeyError as err:
                raise EvaluationError(f"model.classify gave no score for label {err}") from None
            norm = [normalize_text(lab) for lab in labels_list]
            targets = np.array([[int(nl in gold) for nl in norm] for gold in gold_sets])
            maps.append((M.mean_average_precision(scores, targets)["mAP"], len(members)))
    out: dict[str, Any] = M.accuracy_counts(correct_all)
    if maps:
        out["mAP"] = float(sum(m * n for m, n in maps) / sum(n for _, n in maps))
        if len(maps) > 1:
            out["mAP_per_label_set"] = [m for m, _ in maps]
    return out


def _run_caption(model, idx, rows, preds, bs, bar, spice_jars) -> dict:
    audio = [rows[i]["audio"] for i in idx]
    caps = _batched(model.caption, len(idx), [audio], bs, bar, "model.caption")
    for i, c in zip(idx, caps):
        preds[i] = {"prediction": c}
    return M.caption_metrics(caps, [rows[i]["captions"] for i in idx], spice_jars=spice_jars)


def _run_aqa(model, idx, rows, preds, bs, bar) -> dict:
    audio = [rows[i]["audio"] for i in idx]
    questions = [rows[i]["question"] for i in idx]
    answers = _batched(model.ask, len(idx), [audio, questions], bs, bar, "model.ask")
    golds = [rows[i]["answer"] for i in idx]
    kinds = [rows[i].get("answer_type") for i in idx]
    # A yes/no item is judged by its parsed yes/no ("Yes, it is." is right for "yes"); every
    # other item by normalised exact match.
    correct = [
        M.parse_yes_no(a) == M.parse_yes_no(g) if kind == "yes_no" else M.normalize_answer(a) == M.normalize_answer(g)
        for a, g, kind in zip(answers, golds, kinds)
    ]
    for i, a, ok in zip(idx, answers, correct):
        preds[i] = {"prediction": a, "correct": ok}
    out: dict[str, Any] = M.accuracy_counts(correct)
    yes_no = [k for k, kind in enumerate(kinds) if kind == "yes_no"]
    if yes_no:
        out["yes_no"] = M.binary_accuracy([answers[k] for k in yes_no], [golds[k] for k in yes_no])
    other = [k for k, kind in enumerate(kinds) if kind != "yes_no"]
    if yes_no and other:
        out["open"] = M.aqa_accuracy([answers[k] for k in other], [golds[k] for k in other])
    return out


def _run_mcq(model, idx, rows, preds, bs, bar) -> dict:
    audio = [rows[i]["audio"] for i in idx]
    questions = [rows[i]["question"] for i in idx]
    choices = [list(rows[i]["choices"]) for i in idx]
    chosen = _batched(model.choose, len(idx), [audio, questions, choices], bs, bar, "model.choose")
    golds = [rows[i]["answer"] for i in idx]
    correct = [normalize_text(c) == normalize_text(g) for c, g in zip(chosen, golds)]
    for i, c, ok in zip(idx, chosen, correct):
        preds[i] = {"prediction": c, "correct": ok}
    out: dict[str, Any] = M.accuracy_counts(correct)  # = M.mcq_accuracy(chosen, golds)
    out.update(_breakdown([rows[i] for i in idx], correct))
    return out


def evaluate(
    model: Any,
    name_or_path: str | Path | tuple[str, list[dict[str, Any]]],
    out_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    *,
    batch_size: int = 16,
    spice_jars: str | None = None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """Score `model` on a benchmark; returns {"bench", "n", "metrics": {task: {...}}}.

    name_or_path: what load_benchmark takes, or its (name, rows) already loaded (mats eval loads
    them before the model, to fail fast, and does not read the file twice);
    `limit` keeps the first N rows (file order, so a rerun scores the same items);
    `data` overrides the SoundWorld data directory for registered names.
    """
    if isinstance(name_or_path, tuple):
        bench, rows = name_or_path
    else:
        bench, rows = load_benchmark(name_or_path, data=data)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise EvaluationError(f"benchmark {bench!r} has no rows")
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_task[row["task"]].append(i)

    preds: dict[int, dict[str, Any]] = {}
    results: dict[str, Any] = {}
    with tqdm(total=len(rows), desc=f"eval {bench}", disable=not progress, unit="item") as bar:
        for task, idx in by_task.items():
            if task == "classification":
                results[task] = _run_classification(model, idx, rows, preds, batch_size, bar)
            elif task in ("sound_caption", "music_caption"):
                results[task] = _run_caption(model, idx, rows, preds, batch_size, bar, spice_jars)
            elif task == "aqa":
                results[task] = _run_aqa(model, idx, rows, preds, batch_size, bar)
            elif task == "mcq":
                results[task] = _run_mcq(model, idx, rows, preds, batch_size, bar)
            else:  # read_bench validates tasks, so only a hand-built row list gets here
                raise EvaluationError(f"no metric for task {task!r}")

    result = {"bench": bench, "n": len(rows), "metrics": results}
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_jsonl(out_dir / "predictions.jsonl", ({"index": i, **rows[i], **preds[i]} for i in range(len(rows))))
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
