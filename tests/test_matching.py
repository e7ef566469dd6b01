import re

import numpy as np
import pytest
import torch

from mats.matching import MatchingError, match_to_candidates, normalize_text, option_letter


class BagOfWords:
    """Fake text encoder: word-count vectors over a fixed vocabulary; records its calls."""

    def __init__(self, vocab):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.calls = []

    def vector(self, text):
        v = np.zeros(len(self.vocab) + 1)
        for w in re.findall(r"[a-z]+", text.lower()):
            v[self.vocab.get(w, len(self.vocab))] += 1  # unknown words share the last slot
        return v

    def __call__(self, texts):
        self.calls.append(list(texts))
        return torch.tensor(np.stack([self.vector(t) for t in texts]) * 3.0)  # not unit-norm


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


VOCAB = ["dog", "barking", "cat", "meowing", "car", "engine", "loud", "is", "a", "the"]


def test_normalize_text():
    assert normalize_text("The  Crying_Baby!") == "crying baby"
    assert normalize_text("An owl, a cat.") == "owl cat"


def test_cosine_choice_and_scores():
    emb = BagOfWords(VOCAB)
    preds = ["a dog is barking", "loud car engine"]
    cands = ["dog barking", "cat meowing", "car engine"]
    out = match_to_candidates(preds, cands, emb)
    assert [best for best, _ in out] == [0, 2]
    for pred, (_, scores) in zip(preds, out):
        expected = [cosine(emb.vector(pred), emb.vector(c)) for c in cands]
        assert scores == pytest.approx(expected, abs=1e-6)
        assert all(isinstance(s, float) for s in scores)


def test_exact_match_wins_over_cosine():
    # A table embedder where "the dog" sits right on top of the wrong candidate.
    table = {"The dog.": [1.0, 0.0], "dog": [0.0, 1.0], "dog barking loudly": [0.99, 0.1]}

    def embed(texts):
        return torch.tensor([table[t] for t in texts])

    ((best, scores),) = match_to_candidates(["The dog."], ["dog barking loudly", "dog"], embed)
    assert best == 1
    assert scores[1] == 1.0  # exact match sets the chosen score to the top of the range
    assert scores[0] == pytest.approx(cosine(np.array([1.0, 0]), np.array([0.99, 0.1])), abs=1e-6)


def test_each_distinct_string_embedded_once():
    emb = BagOfWords(VOCAB)
    match_to_candidates(["dog", "dog", "cat"], ["dog", "cat", "car"], emb)
    assert len(emb.calls) == 1
    assert sorted(emb.calls[0]) == sorted({"dog", "cat", "car"})


def test_option_letters_for_multiple_choice():
    emb = BagOfWords(VOCAB)
    choices = [["dog", "cat", "car"]] * 6
    preds = ["(B)", "B.", "(c) car engine", "C) car", "b", "D"]
    out = match_to_candidates(preds, choices, emb)
    assert [b for b, _ in out[:4]] == [1, 1, 2, 2]
    assert out[0][1][1] == 1.0
    # lower-case bare "b" is not read as a letter, nor is "D" with only 3 options: cosine decides,
    # and neither word is in any option, so all cosines are 0 and the first index wins.
    assert out[4][0] == 0 and out[4][1] == [0.0, 0.0, 0.0]
    assert out[5][0] == 0
    assert option_letter("A dog barks", 3) is None


def test_letters_off_for_shared_label_list_by_default():
    emb = BagOfWords(VOCAB)
    ((best, _),) = match_to_candidates(["B"], ["dog", "cat"], emb)
    assert best == 0  # no letter reading for classification labels; all cosines are 0
    ((best, _),) = match_to_candidates(["B"], ["dog", "cat"], emb, letters=True)
    assert best == 1


def test_errors():
    emb = BagOfWords(VOCAB)
    with pytest.raises(MatchingError, match="2 predictions but 1 candidate lists"):
        match_to_candidates(["dog", "cat"], [["dog"]], emb)
    with pytest.raises(MatchingError, match="no candidates"):
        match_to_candidates(["dog"], [], emb)
    with pytest.raises(MatchingError, match="shape"):
        match_to_candidates(["dog"], ["cat"], lambda t: torch.zeros(5))
    assert match_to_candidates([], ["dog"], emb) == []
