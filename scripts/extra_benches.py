"""Write the extra benchmark files docs/experiments.md uses, from a SoundWorld `full` build.

    python scripts/extra_benches.py [--data data/soundworld] [--clap runs/mini/clap] [--out runs/evals]

  animals.jsonl  held-out: the sound-classification clips whose label is an animal, classified
                 among the animal labels only (the issue's "4x chance on animal sounds" check)
  val_cls.jsonl  validation: the clap clips made only of the recordings mini-CLAP held out from its
                 training (CLAP/split.json), those made from one recording labelled from the
                 manifest, among all their labels (used to choose settings, never the benchmarks)
  val_cap.jsonl  validation: every such clip with its captions
  val_animal_qa.jsonl  validation: the val_cls clips of an animal, asked the issue's question
                 "What animal is making this sound?" (answer: the label, exact match)

The validation clips' recordings are in neither mini-CLAP's training data nor the benchmarks, so
their audio embeddings are as unseen as a benchmark's. (clap/val.jsonl is not such a set: its
clips reuse the recordings of clap/train.jsonl.)

Audio paths are written absolute, so the files work from any directory:
`mats eval --model mats-mini --bench runs/evals/animals.jsonl`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mats.data.records import read_jsonl
from mats_lab.soundworld.subsets import animal_classification


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{path}: {len(rows)} items, {len(rows[0].get('labels', [])) or 'no'} labels")


ANIMAL_QUESTION = "What animal is making this sound?"


def animal_qa(cls: list[dict], recordings: list[dict]) -> list[dict]:
    animals = {r["label"] for r in recordings if r["category"] == "animal"}
    return [
        {"id": r["id"], "audio": r["audio"], "task": "aqa", "question": ANIMAL_QUESTION, "answer": r["label"]}
        for r in cls
        if r["label"] in animals
    ]


def val_benches(data: Path, clap: Path, recordings: list[dict]) -> tuple[list[dict], list[dict]]:
    label = {r["id"]: r["label"] for r in recordings}
    held = set(json.loads((clap / "split.json").read_text())["val_recordings"])
    pairs = [
        p
        for name in ("train", "val")
        for p in read_jsonl(data / "clap" / f"{name}.jsonl")
        if held.issuperset(p["sources"])
    ]  # read_pairs would drop "sources"
    captions: dict[str, list[str]] = {}
    single: dict[str, str] = {}  # clip -> label, for clips made from one recording
    for p in pairs:
        captions.setdefault(p["audio"], []).append(p["caption"])
        if len(p["sources"]) == 1:
            single[p["audio"]] = label[p["sources"][0]]
    path = {a: str((data / "clap" / a).resolve()) for a in captions}
    labels = sorted(set(single.values()))
    cls = [
        {"id": a, "audio": path[a], "task": "classification", "label": lab, "labels": labels}
        for a, lab in single.items()
    ]
    cap = [{"id": a, "audio": path[a], "task": "sound_caption", "captions": c} for a, c in captions.items()]
    return cls, cap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/soundworld"))
    ap.add_argument("--clap", type=Path, default=Path("runs/mini/clap"), help="mini-CLAP training dir")
    ap.add_argument("--out", type=Path, default=Path("runs/evals"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    recordings = json.loads((args.data / "manifest.json").read_text())["recordings"]
    _write(args.out / "animals.jsonl", animal_classification(args.data))
    cls, cap = val_benches(args.data, args.clap, recordings)
    _write(args.out / "val_cls.jsonl", cls)
    _write(args.out / "val_cap.jsonl", cap)
    _write(args.out / "val_animal_qa.jsonl", animal_qa(cls, recordings))


if __name__ == "__main__":
    main()
