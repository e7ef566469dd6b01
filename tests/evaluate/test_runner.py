import json
from pathlib import Path

import numpy as np
import pytest

from mats.data.records import write_jsonl
from mats.evaluate import metrics as M
from mats.evaluate import runner
from mats.evaluate.benchmarks import load_benchmark
from mats.evaluate.runner import EvaluationError, evaluate

ANIMALS = ["dog", "cat", "owl"]
TAGS = ["rain", "wind", "speech"]

BENCH = [
    # classification, single label (one wrong)
    {"audio": "c1.wav", "task": "classification", "label": "dog", "labels": ANIMALS},
    {"audio": "c2.wav", "task": "classification", "label": "cat", "labels": ANIMALS},
    {"audio": "c3.wav", "task": "classification", "label": "owl", "labels": ANIMALS},
    # classification, multi-label over another label set
    {"audio": "m1.wav", "task": "classification", "label": ["rain", "wind"], "labels": TAGS},
    {"audio": "m2.wav", "task": "classification", "label": ["speech"], "labels": TAGS},
    {"audio": "s1.wav", "task": "sound_caption", "captions": ["a dog barks", "dog barking"]},
    {"audio": "s2.wav", "task": "sound_caption", "captions": ["rain falls"]},
    {"audio": "q1.wav", "task": "aqa", "question": "Is a dog barking?", "answer": "yes", "answer_type": "yes_no"},
    {"audio": "q2.wav", "task": "aqa", "question": "Is it raining?", "answer": "no", "answer_type": "yes_no"},
    {"audio": "q3.wav", "task": "aqa", "question": "How many dogs?", "answer": "2", "answer_type": "open"},
    {"audio": "q4.wav", "task": "aqa", "question": "Which animal?", "answer": "owl", "answer_type": "open"},
    {
        "audio": "k1.wav",
        "task": "mcq",
        "question": "Who?",
        "choices": ["Man", "Woman"],
        "answer": "Man",
        "category": "speech",
    },
    {
        "audio": "k2.wav",
        "task": "mcq",
        "question": "What?",
        "choices": ["dog", "cat", "owl"],
        "answer": "owl",
        "category": "sound",
    },
    {
        "audio": "k3.wav",
        "task": "mcq",
        "question": "What?",
        "choices": ["piano", "drum"],
        "answer": "drum",
        "category": "sound",
    },
]

CLASSIFY = {
    "c1": {"dog": 0.9, "cat": 0.1, "owl": 0.0},
    "c2": {"dog": 0.2, "cat": 0.7, "owl": 0.1},
    "c3": {"dog": 0.5, "cat": 0.1, "owl": 0.4},  # wrong: says dog
    "m1": {"rain": 0.8, "wind": 0.3, "speech": 0.5},
    "m2": {"rain": 0.1, "wind": 0.2, "speech": 0.9},
}
CAPTIONS = {"s1": "a dog barks", "s2": "wind blows"}
ANSWERS = {"q1": "Yes, it is.", "q2": "I am not sure", "q3": "Two.", "q4": "a cat"}
CHOSEN = {"k1": "Man", "k2": "owl", "k3": "piano"}


class FakeModel:
    """Answers from tables keyed by the audio file stem; records the calls it gets."""

    def __init__(self):
        self.calls = []

    def caption(self, audio):
        self.calls.append(("caption", len(audio)))
        return [CAPTIONS[Path(a).stem] for a in audio]

    def ask(self, audio, questions):
        self.calls.append(("ask", len(audio)))
        return [ANSWERS[Path(a).stem] for a in audio]

    def classify(self, audio, labels):
        self.calls.append(("classify", tuple(labels)))
        out = []
        for a in audio:
            scores = CLASSIFY[Path(a).stem]
            assert set(scores) == set(labels)
            out.append({"label": max(scores, key=scores.get), "scores": scores})
        return out

    def choose(self, audio, questions, choices):
        self.calls.append(("choose", len(audio)))
        return [CHOSEN[Path(a).stem] for a in audio]


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "bench" / "mixed.jsonl"
    write_jsonl(path, BENCH)
    return path


@pytest.fixture
def fake_caption_metrics(monkeypatch):
    """caption_metrics is tested on its own (Java, slow); here check what the runner passes."""
    seen = []

    def fake(preds, refs, spice_jars=None):
        seen.append((list(preds), [list(r) for r in refs]))
        return {"CIDEr-D": float(len(preds))}

    monkeypatch.setattr(runner.M, "caption_metrics", fake)
    return seen


def test_evaluate_all_tasks(bench, tmp_path, fake_caption_metrics):
    model = FakeModel()
    out_dir = tmp_path / "out"
    result = evaluate(model, bench, out_dir=out_dir, progress=False, batch_size=2)
    assert result["bench"] == "mixed" and result["n"] == len(BENCH)
    m = result["metrics"]

    cls = m["classification"]
    assert cls["accuracy"] == pytest.approx(4 / 5) and cls["n"] == 5  # c3 wrong
    # mAP on the multi-label set, computed here directly: rows m1, m2 over TAGS.
    scores = np.array([[CLASSIFY[k][t] for t in TAGS] for k in ("m1", "m2")])
    targets = np.array([[1, 1, 0], [0, 0, 1]])
    assert cls["mAP"] == pytest.approx(M.mean_average_precision(scores, targets)["mAP"])
    # one classify call per label set (3 animal rows in batches of 2 -> 2 calls, 1 for tags)
    assert [c for c in model.calls if c[0] == "classify"] == [("classify", tuple(ANIMALS))] * 2 + [
        ("classify", tuple(TAGS))
    ]

    assert fake_caption_metrics == [(["a dog barks", "wind blows"], [["a dog barks", "dog barking"], ["rain falls"]])]
    assert m["sound_caption"] == {"CIDEr-D": 2.0}

    aqa = m["aqa"]
    # q1 "Yes, it is." parses to yes (right), q2 parses to nothing (wrong), q3 "Two." == "2",
    # q4 "a cat" != "owl".
    assert aqa["n"] == 4 and aqa["correct"] == 2
    assert aqa["yes_no"]["correct"] == 1 and aqa["yes_no"]["unparsed"] == 1
    assert aqa["open"] == {"accuracy": 0.5, "correct": 1, "n": 2}

    mcq = m["mcq"]
    assert mcq["accuracy"] == pytest.approx(2 / 3)
    assert mcq["by_category"] == {"sound": {"accuracy": 0.5, "n": 2}, "speech": {"accuracy": 1.0, "n": 1}}

    preds = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    assert [p["index"] for p in preds] == list(range(len(BENCH)))
    assert [Path(p["audio"]).name for p in preds] == [b["audio"] for b in BENCH]
    assert [p["prediction"] for p in preds] == [
        "dog",
        "cat",
        "dog",
        "rain",
        "speech",
        "a dog barks",
        "wind blows",
        "Yes, it is.",
        "I am not sure",
        "Two.",
        "a cat",
        "Man",
        "owl",
        "piano",
    ]
    assert [p.get("correct") for p in preds] == [
        True,
        True,
        False,
        True,
        True,
        None,
        None,
        True,
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    assert preds[0]["scores"] == CLASSIFY["c1"]
    assert json.loads((out_dir / "metrics.json").read_text()) == result


def test_limit_keeps_first_rows(bench):
    result = evaluate(FakeModel(), bench, limit=3, progress=False)
    assert result["n"] == 3 and list(result["metrics"]) == ["classification"]
    assert result["metrics"]["classification"]["accuracy"] == pytest.approx(2 / 3)


def test_already_loaded_rows_are_not_read_again(bench):
    """mats eval loads the benchmark before the model and hands over (name, rows)."""
    name, rows = load_benchmark(bench)
    result = evaluate(FakeModel(), ("renamed", rows[:3]), progress=False)
    assert result["bench"] == "renamed" and result["n"] == 3
    assert result["metrics"] == evaluate(FakeModel(), bench, limit=3, progress=False)["metrics"]


def test_wrong_answer_count_is_an_error(bench):
    class Broken(FakeModel):
        def classify(self, audio, labels):
            return super().classify(audio, labels)[:-1]

    with pytest.raises(EvaluationError, match="model.classify returned 1 answers for 2"):
        evaluate(Broken(), bench, limit=3, progress=False, batch_size=2)


def test_unknown_benchmark_lists_names():
    with pytest.raises(ValueError, match="soundworld-mcq"):
        evaluate(FakeModel(), "no-such-bench", progress=False)
