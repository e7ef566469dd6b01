"""benchmarks/clap_alignment.py: nearest-label lookups and the accuracy they give."""

import importlib.util

import torch
from conftest import ROOT

spec = importlib.util.spec_from_file_location("clap_alignment", ROOT / "benchmarks" / "clap_alignment.py")
alignment = importlib.util.module_from_spec(spec)
spec.loader.exec_module(alignment)


def test_nearest_label_is_by_cosine_not_by_length():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 9.0]])  # the long key is not nearer for being long
    queries = torch.tensor([[2.0, 0.1], [0.1, 3.0], [1.0, 0.9]])
    assert alignment.nearest_label(queries, keys, ["cow", "elephant", "both"]) == ["cow", "elephant", "both"]


def test_accuracy_counts_matches_and_survives_no_items():
    assert alignment.accuracy(["cow", "elephant", "cow"], ["cow", "cow", "cow"]) == 2 / 3
    assert alignment.accuracy([], []) == 0.0
