import os
from pathlib import Path

import numpy as np
import pytest

from mats.evaluate import metrics as M


def test_classification_accuracy():
    out = M.classification_accuracy(
        ["dog", "Crying baby", "cat", "rain"], ["dog", "crying_baby", "owl", ["wind", "rain"]]
    )
    assert out == {"accuracy": 0.75, "correct": 3, "n": 4}
    with pytest.raises(M.MetricError, match="2 predictions but 1"):
        M.classification_accuracy(["a", "b"], ["a"])


def test_mean_average_precision_by_hand():
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.3, 0.2, 0.6]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    # class 0: ranked 0.9(+) 0.8(-) 0.3(+) -> AP = (1/1 + 2/3) / 2; class 1: top-ranked -> 1;
    # class 2: no positive -> left out.
    out = M.mean_average_precision(scores, targets)
    assert out["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert (out["classes"], out["classes_skipped"]) == (2, 1)
    with pytest.raises(M.MetricError, match="0/1"):
        M.mean_average_precision(scores, targets * 2)


def test_aqa_normalisation():
    assert M.normalize_answer("Twenty-one birds!") == "21 birds"
    out = M.aqa_accuracy(
        ["Two dogs.", "The car", "three", "twenty one", "A piano"], ["2 dogs", "car", "4", "21", "guitar"]
    )
    assert out["correct"] == 3 and out["accuracy"] == pytest.approx(0.6)


def test_yes_no_parsing_and_binary_accuracy():
    assert M.parse_yes_no("Yes, there is a dog.") == "yes"
    assert M.parse_yes_no("There is no dog") == "no"
    assert M.parse_yes_no("I think so, yes") == "yes"
    assert M.parse_yes_no("no, yes") == "no"  # a leading answer wins
    assert M.parse_yes_no("maybe yes maybe no") is None
    assert M.parse_yes_no("a dog barks") is None
    out = M.binary_accuracy(["Yes.", "no it is not", "perhaps", "yes"], ["yes", "no", "no", "no"])
    assert (out["correct"], out["n"], out["unparsed"]) == (2, 4, 1)
    with pytest.raises(M.MetricError, match="not yes/no"):
        M.binary_accuracy(["yes"], ["a dog"])


def test_mcq_accuracy():
    out = M.mcq_accuracy(["Man", "the woman", "Robot"], ["Man", "Woman", "Child"])
    assert out["correct"] == 2 and out["accuracy"] == pytest.approx(2 / 3)


def _java_children():
    """Live (not zombie) child processes of this test process running java."""
    me, kids = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z" and "java" in text:
            kids.append(stat.parent.name)
    return kids


def test_caption_metrics_identical_and_disjoint(tmp_path, monkeypatch):
    monkeypatch.delenv(M.SPICE_ENV, raising=False)
    refs = ["a dog barks twice", "a car engine idles loudly", "rain falls on a tin roof"]
    # Identical (a stray "\r" must not shift captions between items in the Java tokenizer).
    preds = ["A dog barks\r twice.", "a car engine idles loudly", "Rain falls on a tin roof"]
    same = M.caption_metrics(preds, [[r] for r in refs])
    assert same["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert same["METEOR"] == pytest.approx(1.0, abs=1e-3)
    assert same["ROUGE-L"] == pytest.approx(1.0)
    # CIDEr-D on a perfect match: every n-gram cosine 1, no length penalty, x10.
    assert same["CIDEr-D"] == pytest.approx(10.0, abs=1e-6)
    assert same["SPICE"] is None and same["SPIDEr"] is None
    assert same["unavailable"] == ["SPICE", "SPIDEr"] and same["n"] == 3

    # Disjoint vocabularies (and an empty prediction, which must score 0, not crash); a jar
    # directory without the CoreNLP jars still leaves SPICE unavailable. Second call: the METEOR
    # JVM of the first must be gone and a new one must work.
    disjoint = M.caption_metrics(
        ["birds singing", "", "piano music plays"], [[r] for r in refs], spice_jars=str(tmp_path)
    )
    assert disjoint["BLEU-4"] < 1e-6 and disjoint["BLEU-1"] < 1e-6  # BLEU smooths, never 0
    assert disjoint["METEOR"] == 0 and disjoint["ROUGE-L"] == 0 and disjoint["CIDEr-D"] == 0
    assert disjoint["unavailable"] == ["SPICE", "SPIDEr"]
    assert _java_children() == []


def test_caption_metrics_input_errors():
    with pytest.raises(M.MetricError, match="non-empty list of references"):
        M.caption_metrics(["a dog"], [[]])
    with pytest.raises(M.MetricError, match="2 predictions but 1"):
        M.caption_metrics(["a", "b"], [["a"]])


def test_find_spice_jars(tmp_path, monkeypatch):
    monkeypatch.delenv(M.SPICE_ENV, raising=False)
    assert M.find_spice_jars() is None
    for jar in M.SPICE_JARS[:1]:
        (tmp_path / jar).write_bytes(b"")
    assert M.find_spice_jars(tmp_path) is None  # half the jars is not enough
    for jar in M.SPICE_JARS:
        (tmp_path / jar).write_bytes(b"")
    monkeypatch.setenv(M.SPICE_ENV, str(tmp_path))
    assert M.find_spice_jars() == tmp_path


def test_spice_plumbing_with_a_stand_in_java(tmp_path, monkeypatch):
    """The real SPICE needs the CoreNLP jars (absent here); a stand-in `java` on PATH checks the
    command we build and answers in SPICE's output format, so the reading side is exercised."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "java"
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "assert 'edu.anu.spice.SpiceScorer' in args, args\n"
        "cp = args[args.index('-cp') + 1]\n"
        "assert 'stanford-corenlp-3.6.0-models.jar' in cp and 'spice-1.0.jar' in cp, cp\n"
        "items = json.load(open(args[args.index('edu.anu.spice.SpiceScorer') + 1]))\n"
        "out = [{'image_id': it['image_id'], 'scores': {'All': {'f': 0.25 * len(it['refs'])}}}\n"
        "       for it in items]\n"
        "json.dump(out, open(args[args.index('-out') + 1], 'w'))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    jars = tmp_path / "jars"
    jars.mkdir()
    for jar in M.SPICE_JARS:
        (jars / jar).write_bytes(b"")
    gts = {0: ["a dog barks"], 1: ["rain", "rain falls"]}
    res = {0: ["a dog"], 1: ["rain"]}
    assert M._spice(gts, res, jars) == pytest.approx((0.25 + 0.5) / 2)
