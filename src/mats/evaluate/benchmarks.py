"""Benchmark registry and loaders: a name, a spec for a real dataset, or a JSONL path -> rows.

Three ways to name a benchmark (`load_benchmark` tries them in this order):

1. A registered SoundWorld name, resolved under the data directory (env MATS_DATA, default
   "data/soundworld"), whose `bench/` folder `mats data build` fills:

       soundworld-sound-cls        DIR/bench/sound_classification.jsonl
       soundworld-instrument-cls   DIR/bench/instrument_classification.jsonl
       soundworld-sound-caption    DIR/bench/sound_caption.jsonl
       soundworld-music-caption    DIR/bench/music_caption.jsonl
       soundworld-aqa-yes-no       DIR/bench/aqa_yes_no.jsonl
       soundworld-aqa-open         DIR/bench/aqa_open.jsonl
       soundworld-mcq              DIR/bench/mcq.jsonl

2. A spec for a real dataset's own files, KIND:METADATA@AUDIO_DIR[?OPTION=VALUE&...]:

       mmau:/data/mmau-test-mini.json@/data/mmau          (folder holding test-mini-audios/)
       clotho:/data/clotho/evaluation.csv@/data/clotho/evaluation
       audiocaps:/data/audiocaps/test.csv@/data/audiocaps/audio
       esc50:/data/esc50/meta/esc50.csv@/data/esc50/audio[?folds=1,2]
       musiccaps:/data/musiccaps-public.csv@/data/musiccaps/audio[?split=eval|train]
       mats:/data/AudioCaps_test.json@/data/root          (an official-format MATS test JSON,
                                                           a list or {"annotation": [...]};
                                                           audio_id under the official root)

3. A path to a benchmark JSONL in the records format (records.read_bench).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mats.data import importers
from mats.data.records import RecordError, read_bench

DATA_ENV = "MATS_DATA"
DEFAULT_DATA_DIR = "data/soundworld"

# name -> file stem under DIR/bench/
SOUNDWORLD_BENCHMARKS: dict[str, str] = {
    "soundworld-sound-cls": "sound_classification",
    "soundworld-instrument-cls": "instrument_classification",
    "soundworld-sound-caption": "sound_caption",
    "soundworld-music-caption": "music_caption",
    "soundworld-aqa-yes-no": "aqa_yes_no",
    "soundworld-aqa-open": "aqa_open",
    "soundworld-mcq": "mcq",
}

# spec kind -> importer(metadata, audio_dir, require_audio=..., **options)
SPEC_KINDS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "mmau": importers.import_mmau_json,
    "clotho": importers.import_clotho_bench,
    "audiocaps": importers.import_audiocaps_bench,
    "esc50": importers.import_esc50_bench,
    "musiccaps": importers.import_musiccaps_bench,
    "mats": importers.import_mats_bench,
}


def _folds(value: str) -> list[int]:
    return [int(f) for f in value.split(",") if f]


# spec kind -> {option: (its form, parser of its value)}; the parsed value goes to the importer.
SPEC_OPTIONS: dict[str, dict[str, tuple[str, Callable[[str], Any]]]] = {
    "esc50": {"folds": ("1,2", _folds)},
    "musiccaps": {"split": ("eval|train", str)},
}


class BenchmarkError(ValueError):
    """A benchmark name, spec or file cannot be resolved or read."""


def data_dir(override: str | Path | None = None) -> Path:
    """The SoundWorld data directory: the argument, else $MATS_DATA, else data/soundworld."""
    return Path(override or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR).expanduser()


def benchmark_names() -> list[str]:
    return sorted(SOUNDWORLD_BENCHMARKS)


def benchmark_path(name: str, data: str | Path | None = None) -> Path:
    """The JSONL file a registered SoundWorld name stands for."""
    if name not in SOUNDWORLD_BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; registered: {', '.join(benchmark_names())}")
    return data_dir(data) / "bench" / f"{SOUNDWORLD_BENCHMARKS[name]}.jsonl"


def _parse_options(kind: str, query: str) -> dict[str, Any]:
    known = SPEC_OPTIONS.get(kind, {})
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key not in known:
            takes = " or ".join(f"?{k}={form}" for k, (form, _) in known.items()) or "no options"
            raise BenchmarkError(f"{kind}: unknown option {key!r} ({kind} takes {takes})")
        form, parse = known[key]
        try:
            options[key] = parse(value)
        except ValueError:
            raise BenchmarkError(f"{kind}: {key} must look like {form}, got {value!r}") from None
    return options


def parse_spec(spec: str) -> tuple[str, Path, Path, dict[str, Any]] | None:
    """KIND:METADATA@AUDIO_DIR[?options] -> (kind, metadata, audio_dir, options), or None."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in SPEC_KINDS:
        return None
    rest, _, query = rest.partition("?")
    meta, at, audio = rest.rpartition("@")  # the last "@": the metadata path may contain one
    if not at or not meta or not audio:
        raise BenchmarkError(f"benchmark spec {spec!r} must look like {kind}:METADATA_FILE@AUDIO_DIR")
    return kind, Path(meta).expanduser(), Path(audio).expanduser(), _parse_options(kind, query)


def load_benchmark(
    name_or_path: str | Path,
    data: str | Path | None = None,
    require_audio: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """(benchmark name, rows) for a registered name, a KIND:FILE@AUDIO spec or a JSONL path.

    `data` overrides the SoundWorld data directory; `require_audio=False` lets a spec load when
    the dataset's audio is absent (for tests); JSONL and SoundWorld rows are read as they are.
    """
    text = str(name_or_path)
    try:
        if text in SOUNDWORLD_BENCHMARKS:
            path = benchmark_path(text, data)
            if not path.is_file():
                raise BenchmarkError(
                    f"benchmark {text!r}: {path} not found; build it with "
                    f"`mats data build --out {path.parent.parent}` or set {DATA_ENV}"
                )
            return text, read_bench(path)
        spec = parse_spec(text)
        if spec is not None:
            kind, meta, audio, options = spec
            rows = SPEC_KINDS[kind](meta, audio, require_audio=require_audio, **options)
            return f"{kind}:{meta.stem}", rows
        path = Path(text).expanduser()
        if path.is_file():
            return path.stem, read_bench(path)
    except RecordError as err:
        raise BenchmarkError(str(err)) from None
    raise BenchmarkError(
        f"unknown benchmark {text!r}: not a registered name ({', '.join(benchmark_names())}), "
        f"not a spec ({', '.join(k + ':FILE@AUDIO_DIR' for k in SPEC_KINDS)}), "
        "and not an existing JSONL file"
    )
