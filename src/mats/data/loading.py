"""Resolve the `data.train` entries of a config into AudioTIA records."""

from __future__ import annotations

from pathlib import Path

from mats.data.records import AudioTIARecord, RecordError, read_audiotia


def load_training_records(specs: list[str], max_records: int | None = None) -> list[AudioTIARecord]:
    """Each spec is `synthetic:N`, an AudioTIA `.jsonl`, an official MATS `.json` file, or
    `captions:PAIRS.jsonl`: the captions of (audio, caption) pairs as caption records, or
    `labels:AUDIOTIA.jsonl`: the bare label as text for each classification label of that file
    (importers.label_records)."""
    if not specs:
        raise RecordError("data.train is empty: give AudioTIA .jsonl files (or synthetic:N)")
    records: list[AudioTIARecord] = []
    for spec in specs:
        if spec.startswith("synthetic:"):
            from mats.data.synthetic import synthetic_records

            count = spec.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise RecordError(f"data.train entry {spec!r}: synthetic:N needs a whole number N >= 1")
            records += synthetic_records(int(count))
        elif spec.startswith("captions:"):
            from mats.data.importers import import_caption_pairs

            records += import_caption_pairs(spec.split(":", 1)[1])
        elif spec.startswith("labels:"):
            from mats.data.importers import label_records

            records += label_records(read_audiotia(spec.split(":", 1)[1]))
        elif spec.endswith(".json"):
            from mats.data.importers import import_mats_json

            records += import_mats_json(Path(spec))
        else:
            records += read_audiotia(spec)
    return records[:max_records] if max_records else records
