"""Subsets of a built SoundWorld's benchmarks, for the figures the docs quote beside them.

rows = animal_classification(Path("data/soundworld"))  # the animal clips among the animal labels
"""

from __future__ import annotations

import json
from pathlib import Path

from mats.data.records import read_bench


def animal_classification(data: Path) -> list[dict]:
    """The sound-classification clips whose label is an animal (manifest category "animal"),
    each classified among the benchmark's animal labels only (audio paths absolute)."""
    recordings = json.loads((Path(data) / "manifest.json").read_text())["recordings"]
    animals = {r["label"] for r in recordings if r["category"] == "animal"}
    rows = read_bench(Path(data) / "bench" / "sound_classification.jsonl")
    labels = sorted(animals & set(rows[0]["labels"]))
    return [dict(r, labels=labels) for r in rows if r["label"] in labels]
