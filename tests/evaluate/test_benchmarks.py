from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, SHARED_DATA, shared_file

from mats.data.records import write_jsonl
from mats.evaluate.benchmarks import (
    SOUNDWORLD_BENCHMARKS,
    BenchmarkError,
    benchmark_names,
    benchmark_path,
    load_benchmark,
    parse_spec,
)

MCQ = {"audio": "clips/k1.wav", "task": "mcq", "question": "Who?", "choices": ["a", "b"], "answer": "a"}


def test_registry_file_names(tmp_path):
    assert set(SOUNDWORLD_BENCHMARKS.values()) == {
        "sound_classification",
        "instrument_classification",
        "sound_caption",
        "music_caption",
        "aqa_yes_no",
        "aqa_open",
        "mcq",
    }
    assert benchmark_path("soundworld-sound-cls", tmp_path) == tmp_path / "bench" / "sound_classification.jsonl"


def test_registered_name_under_data_dir(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "bench" / "mcq.jsonl", [MCQ])
    monkeypatch.setenv("MATS_DATA", str(tmp_path))
    name, rows = load_benchmark("soundworld-mcq")
    assert name == "soundworld-mcq" and len(rows) == 1
    assert rows[0]["audio"] == str((tmp_path / "bench" / "clips" / "k1.wav").resolve())
    with pytest.raises(BenchmarkError, match="mats data build"):
        load_benchmark("soundworld-sound-cls")


def test_jsonl_path(tmp_path):
    write_jsonl(tmp_path / "mine.jsonl", [MCQ, MCQ])
    name, rows = load_benchmark(str(tmp_path / "mine.jsonl"))
    assert name == "mine" and len(rows) == 2


def test_unknown_name_lists_registered_names():
    with pytest.raises(BenchmarkError) as err:
        load_benchmark("soundworld-nope")
    for name in benchmark_names():
        assert name in str(err.value)


def check_specs(data, tmp_path, n_mmau, n_esc50_folds12, n_clotho_val, n_audiocaps_val_clips, n_esc50):
    """Each real-format spec KIND:METADATA@AUDIO_DIR loads its file through its importer."""
    name, rows = load_benchmark(f"mmau:{data}/mmau/mmau-test-mini.json@{tmp_path}", require_audio=False)
    assert name == "mmau:mmau-test-mini" and len(rows) == n_mmau
    assert rows[0]["audio"].startswith(str(tmp_path.resolve()))
    name, rows = load_benchmark(f"esc50:{data}/esc50/esc50.csv@{tmp_path}?folds=1,2", require_audio=False)
    assert name == "esc50:esc50" and len(rows) == n_esc50_folds12
    assert {r["fold"] for r in rows} == {1, 2} and len(rows[0]["labels"]) == 50
    _, rows = load_benchmark(f"clotho:{data}/clotho/val.csv@{tmp_path}", require_audio=False)
    assert len(rows) == n_clotho_val and all(len(r["captions"]) == 5 for r in rows)
    _, rows = load_benchmark(f"audiocaps:{data}/audiocaps/val.csv@{tmp_path}", require_audio=False)
    assert len(rows) == n_audiocaps_val_clips and all(len(r["captions"]) == 5 for r in rows)
    # Audio is required by default: the error names the count.
    with pytest.raises(BenchmarkError, match=f"{n_esc50} of {n_esc50} audio files not found"):
        load_benchmark(f"esc50:{data}/esc50/esc50.csv@{tmp_path}")


def test_specs_for_real_formats(tmp_path):
    check_specs(FIXTURE_DATA, tmp_path, 7, 20, 3, 3, 50)  # the fixtures' rows (tests/fixtures)
    _, rows = load_benchmark(f"clotho:{FIXTURE_DATA}/clotho/val.csv@{tmp_path}", require_audio=False)
    assert rows[2]["id"] == "e ieio ieai.wav"  # the file name " e ieio ieai.wav", stripped


def test_specs_for_real_formats_full_files(tmp_path):
    for rel in ("mmau/mmau-test-mini.json", "esc50/esc50.csv", "clotho/val.csv", "audiocaps/val.csv"):
        shared_file(rel)
    check_specs(SHARED_DATA, tmp_path, 1000, 800, 1045, 495, 2000)  # README row counts


def test_bad_specs():
    assert parse_spec("/some/file.jsonl") is None
    with pytest.raises(BenchmarkError, match="METADATA_FILE@AUDIO_DIR"):
        load_benchmark("mmau:/x/mmau.json")
    with pytest.raises(BenchmarkError, match="unknown option"):
        load_benchmark("clotho:/x/test.csv@/audio?folds=1")
    kind, meta, audio, opts = parse_spec("esc50:/a@b/esc50.csv@/audio?folds=3")
    assert (kind, meta, audio, opts) == ("esc50", Path("/a@b/esc50.csv"), Path("/audio"), {"folds": [3]})


def test_specs_for_musiccaps_and_official_mats_test_json(tmp_path):
    name, rows = load_benchmark(
        f"musiccaps:{FIXTURE_DATA}/musiccaps/musiccaps-public.csv@{tmp_path}?split=eval", require_audio=False
    )
    assert name == "musiccaps:musiccaps-public" and len(rows) == 3
    assert {r["task"] for r in rows} == {"music_caption"} and all(len(r["captions"]) == 1 for r in rows)
    _, rows = load_benchmark(f"musiccaps:{FIXTURE_DATA}/musiccaps/musiccaps-public.csv@{tmp_path}", require_audio=False)
    assert len(rows) == 6
    name, rows = load_benchmark(f"mats:{FIXTURE_DATA}/mats/test.json@{tmp_path}", require_audio=False)
    assert name == "mats:test" and len(rows) == 8
    assert [r["task"] for r in rows].count("classification") == 3 and rows[0]["audio"].startswith(str(tmp_path))
    with pytest.raises(BenchmarkError, match="8 of 8 audio files not found"):
        load_benchmark(f"mats:{FIXTURE_DATA}/mats/test.json@{tmp_path}")


def test_spec_options_per_kind():
    with pytest.raises(BenchmarkError, match=r"unknown option 'folds' \(musiccaps takes \?split=eval\|train\)"):
        load_benchmark("musiccaps:/x/m.csv@/audio?folds=1")
    with pytest.raises(BenchmarkError, match=r"unknown option 'split' \(mats takes no options\)"):
        load_benchmark("mats:/x/t.json@/audio?split=eval")
    with pytest.raises(BenchmarkError, match=r"folds must look like 1,2, got 'a'"):
        load_benchmark("esc50:/x/e.csv@/audio?folds=a")
    with pytest.raises(BenchmarkError, match="unknown MusicCaps split 'dev'"):
        load_benchmark(f"musiccaps:{FIXTURE_DATA}/musiccaps/musiccaps-public.csv@/audio?split=dev")
    with pytest.raises(BenchmarkError, match="musiccaps:FILE@AUDIO_DIR, mats:FILE@AUDIO_DIR"):
        load_benchmark("nothing-of-the-kind")
