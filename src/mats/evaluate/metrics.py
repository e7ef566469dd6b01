"""Evaluation metrics: pure functions, plain dicts of plain numbers out.

Captioning goes through pycocoevalcap (the coco-caption code every audio-captioning paper uses):
its PTBTokenizer, BLEU, METEOR (Java), ROUGE-L and CIDEr. pycocoevalcap 1.2's `Cider` class *is*
CIDEr-D — its scorer has the D variant's clipped n-gram counts (min(hyp, ref) * ref), the Gaussian
length penalty with sigma = 6, the mean over n = 1..4, the division by the number of references
and the x10 scale, with document frequencies taken from the references of the evaluated set and
no stemming — so we report it under the name "CIDEr-D". Because idf comes from the evaluated set,
CIDEr-D is a corpus-level number: on a single item every idf is 0 and the score is 0.

SPICE (and so SPIDEr = (CIDEr-D + SPICE) / 2) needs the Stanford CoreNLP 3.6.0 jars, which
pycocoevalcap would download; here they are used only when found in a configured directory
(`spice_jars` argument or env MATS_SPICE_JARS) and are otherwise reported as unavailable — never
estimated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mats.matching import normalize_text

SPICE_ENV = "MATS_SPICE_JARS"
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
METEOR_TIMEOUT_S = 300.0  # plus 0.5 s per item; a healthy run takes seconds


class MetricError(ValueError):
    """Inputs to a metric do not fit together."""


def _check_lengths(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise MetricError(f"{what}: {len(a)} predictions but {len(b)} references")
    if len(a) == 0:
        raise MetricError(f"{what}: nothing to score")


def accuracy_counts(correct: Sequence[bool]) -> dict[str, float | int]:
    """{"accuracy": hits / n, "correct": hits, "n": n} for a list of per-item hits."""
    n = len(correct)
    k = int(sum(correct))
    return {"accuracy": k / n, "correct": k, "n": n}


# ----------------------------------------------------------------------------- classification


def classification_accuracy(
    pred_labels: Sequence[str], gold_labels: Sequence[str | Sequence[str]]
) -> dict[str, float | int]:
    """Top-1 accuracy. A gold entry may be a list (multi-label): a hit is any of its labels.

    Labels are compared after `normalize_text`, so "Crying baby" matches "crying_baby".
    """
    _check_lengths(pred_labels, gold_labels, "classification_accuracy")
    return accuracy_counts([normalize_text(pred) in gold_set(gold) for pred, gold in zip(pred_labels, gold_labels)])


def gold_set(gold: str | Sequence[str]) -> set[str]:
    """A gold label (or a multi-label list) as the set of its `normalize_text` forms."""
    return {normalize_text(g) for g in ([gold] if isinstance(gold, str) else gold)}


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> dict[str, float | int]:
    """Macro mean of per-class average precision, over the classes that have a positive.

    scores: (N, C) real scores; targets: (N, C) 0/1. Classes without a positive have an
    undefined AP and are left out (their count is reported as "classes_skipped").
    """
    from sklearn.metrics import average_precision_score

    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise MetricError(
            f"mean_average_precision: scores {scores.shape} and targets {targets.shape} must both be (N, C)"
        )
    if not np.isin(targets, (0, 1)).all():
        raise MetricError("mean_average_precision: targets must be 0/1")
    has_pos = targets.sum(axis=0) > 0  # (C,)
    if not has_pos.any():
        raise MetricError("mean_average_precision: no class has a positive example")
    aps = [float(average_precision_score(targets[:, c], scores[:, c])) for c in np.flatnonzero(has_pos)]
    return {
        "mAP": float(np.mean(aps)),
        "classes": len(aps),
        "classes_skipped": int((~has_pos).sum()),
    }


# ----------------------------------------------------------------------------- QA and MCQ

_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
NUMBER_WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)} | _TENS


def _numbers_to_digits(words: list[str]) -> list[str]:
    """["twenty", "one", "dogs"] -> ["21", "dogs"]; ["three"] -> ["3"]."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _TENS and i + 1 < len(words) and words[i + 1] in NUMBER_WORDS and 0 < NUMBER_WORDS[words[i + 1]] < 10:
            out.append(str(_TENS[w] + NUMBER_WORDS[words[i + 1]]))
            i += 2
            continue
        out.append(str(NUMBER_WORDS[w]) if w in NUMBER_WORDS else w)
        i += 1
    return out


def normalize_answer(text: str) -> str:
    """Lowercase, no punctuation or articles, number words as digits ("Two." -> "2")."""
    return " ".join(_numbers_to_digits(normalize_text(text).split()))


def aqa_accuracy(preds: Sequence[str], answers: Sequence[str]) -> dict[str, float | int]:
    """Exact match after `normalize_answer` (so "Two dogs." == "2 dogs")."""
    _check_lengths(preds, answers, "aqa_accuracy")
    return accuracy_counts([normalize_answer(p) == normalize_answer(a) for p, a in zip(preds, answers)])


def parse_yes_no(text: str) -> str | None:
    """ "yes"/"no" if the text starts with one, else if it holds exactly one of them; else None."""
    words = normalize_text(text).split()
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return words[0]
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return "yes" if has_yes else "no"
    return None


def binary_accuracy(preds: Sequence[str], answers: Sequence[str]) -> dict[str, float | int]:
    """Yes/no accuracy. A prediction that parses to neither (or both) counts as wrong."""
    _check_lengths(preds, answers, "binary_accuracy")
    golds = []
    for a in answers:
        g = parse_yes_no(a)
        if g is None:
            raise MetricError(f"binary_accuracy: reference answer {a!r} is not yes/no")
        golds.append(g)
    parsed = [parse_yes_no(p) for p in preds]
    out = accuracy_counts([p == g for p, g in zip(parsed, golds)])
    out["unparsed"] = sum(p is None for p in parsed)
    return out


def mcq_accuracy(chosen: Sequence[str], answers: Sequence[str]) -> dict[str, float | int]:
    """Chosen option text equals the answer option (after `normalize_text`)."""
    _check_lengths(chosen, answers, "mcq_accuracy")
    return accuracy_counts([normalize_text(c) == normalize_text(a) for c, a in zip(chosen, answers)])


# ----------------------------------------------------------------------------- captioning

# Java's PTBTokenizer (-preserveLines) splits on every line terminator, not just "\n"; one stray
# "\r" would shift every following caption onto the wrong clip. Flatten them all first.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")


def _tokenize(predictions: Sequence[str], references: Sequence[Sequence[str]]):
    """One PTBTokenizer (Java) call for predictions and references together."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    data: dict[str, list[dict[str, str]]] = {}
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        data[f"p{i}"] = [{"caption": _LINE_BREAKS.sub(" ", pred)}]
        data[f"r{i}"] = [{"caption": _LINE_BREAKS.sub(" ", r)} for r in refs]
    tok = PTBTokenizer().tokenize(data)
    n = len(predictions)
    res = {i: tok.get(f"p{i}", []) for i in range(n)}
    gts = {i: tok.get(f"r{i}", []) for i in range(n)}
    for i in range(n):  # the tokenizer pairs lines with ids by position: check nothing shifted
        if len(res[i]) != 1 or len(gts[i]) != len(references[i]):
            raise MetricError(f"PTBTokenizer output misaligned at item {i}")
        # A reference of punctuation only tokenises to nothing; it is not a reference.
        gts[i] = [r for r in gts[i] if r.strip()]
        if not gts[i]:
            raise MetricError(f"caption_metrics: item {i} has no non-empty reference")
    return gts, res


def _rouge_l(gts: dict, res: dict) -> float:
    """pycocoevalcap ROUGE-L (mean of per-item scores), with an empty prediction scoring 0.

    Its `calc_score` divides by the prediction's length, so an empty caption (which a model can
    produce) would raise ZeroDivisionError instead of scoring zero.
    """
    from pycocoevalcap.rouge.rouge import Rouge

    rouge = Rouge()
    scores = [rouge.calc_score(res[i], gts[i]) if res[i][0].split() else 0.0 for i in gts]
    return float(np.mean(scores))


def _meteor(gts: dict, res: dict) -> float:
    """METEOR via pycocoevalcap's Java subprocess, always shut down afterwards.

    pycocoevalcap only stops the JVM in `__del__`, which may run late or never (one live JVM of up
    to 2 GB per call otherwise); we close its pipes, kill it and reap it here.
    """
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    proc = meteor.meteor_p
    # Its reads block forever if the JVM stalls; a watchdog kill turns that into an error.
    timeout = METEOR_TIMEOUT_S + 0.5 * len(gts)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        score, _ = meteor.compute_score(gts, res)
    except (ValueError, BrokenPipeError) as err:
        raise MetricError(f"METEOR (Java) failed or timed out after {timeout:.0f} s: {err}") from None
    finally:
        watchdog.cancel()
        proc.kill()  # no-op if it already exited
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        # compute_score does not release its lock when it raises; Meteor.__del__ takes the same
        # lock, so a held one would hang the garbage collector.
        if meteor.lock.locked():
            meteor.lock.release()
    return float(score)


def find_spice_jars(spice_jars: str | Path | None = None) -> Path | None:
    """The directory holding the CoreNLP 3.6.0 jars SPICE needs, or None if not configured/found."""
    where = spice_jars if spice_jars is not None else os.environ.get(SPICE_ENV)
    if not where:
        return None
    path = Path(where).expanduser()
    return path if all((path / jar).is_file() for jar in SPICE_JARS) else None


def _spice(gts: dict, res: dict, jar_dir: Path) -> float:
    """SPICE with pycocoevalcap's spice-1.0.jar and the CoreNLP jars from `jar_dir`.

    Run directly (not through pycocoevalcap's `Spice`, which downloads the jars when missing);
    no LMDB cache, temp files in a private directory.
    """
    import pycocoevalcap.spice as spice_pkg

    spice_dir = Path(spice_pkg.__file__).parent
    classpath = os.pathsep.join(
        [str(spice_dir / "spice-1.0.jar"), str(spice_dir / "lib" / "*")] + [str(jar_dir / jar) for jar in SPICE_JARS]
    )
    items = [{"image_id": i, "test": res[i][0], "refs": gts[i]} for i in sorted(gts)]
    with tempfile.TemporaryDirectory(prefix="mats-spice-") as tmp:
        inp, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        inp.write_text(json.dumps(items))
        cmd = [
            "java",
            "-Xmx8G",
            "-cp",
            classpath,
            "edu.anu.spice.SpiceScorer",
            str(inp),
            "-out",
            str(out),
            "-subset",
            "-silent",
        ]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise MetricError(f"SPICE failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        results = json.loads(out.read_text())
    f_scores = [float(r["scores"]["All"]["f"]) for r in results]
    return float(np.nanmean(f_scores))


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    spice_jars: str | Path | None = None,
) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE, SPIDEr when the jars are found).

    predictions[i] is one caption; references[i] the list of reference captions of item i.
    Returns {"BLEU-1", ..., "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE", "SPIDEr",
    "unavailable": [names], "n"}; unavailable metrics are None.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    _check_lengths(predictions, references, "caption_metrics")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise MetricError(f"caption_metrics: item {i} needs a non-empty list of references")
    gts, res = _tokenize(predictions, references)

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out: dict = {f"BLEU-{k + 1}": float(b) for k, b in enumerate(bleu)}
    out["METEOR"] = _meteor(gts, res)
    out["ROUGE-L"] = _rouge_l(gts, res)
    out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])

    jar_dir = find_spice_jars(spice_jars)
    if jar_dir is None:
        out["SPICE"] = out["SPIDEr"] = None
        out["unavailable"] = ["SPICE", "SPIDEr"]
    else:
        out["SPICE"] = _spice(gts, res, jar_dir)
        out["SPIDEr"] = (out["CIDEr-D"] + out["SPICE"]) / 2
        out["unavailable"] = []
    out["n"] = len(predictions)
    return out
