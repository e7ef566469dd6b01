import csv
import json
from pathlib import Path

import pytest

from mats.data import importers as I
from mats.data.records import RecordError, read_bench, validate_bench_line, write_jsonl

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("split,n", [("train", 49_838), ("val", 2_475), ("test", 4_875)])
def test_audiocaps_csv(split, n):
    recs = I.import_audiocaps_csv(DATA / "audiocaps" / f"{split}.csv")
    assert len(recs) == n  # README row counts
    rows = csv_rows(DATA / "audiocaps" / f"{split}.csv")
    assert [r.text for r in recs] == [row["caption"].strip() for row in rows]
    assert all(r.task == "sound_caption" and r.answer == r.text for r in recs)
    assert {r.instruction for r in recs} == set(I.SOUND_CAPTION_INSTRUCTIONS)


def test_clotho_csv_five_records_per_clip():
    path = DATA / "clotho" / "train.csv"
    recs = I.import_clotho_csv(path)
    rows = csv_rows(path)
    assert len(rows) == 3_839 and len(recs) == 5 * 3_839
    assert [r.text for r in recs[5:10]] == [rows[1][f"caption_{k}"].strip() for k in range(1, 6)]
    assert all(r.text.strip() and r.task == "sound_caption" for r in recs)


def test_musiccaps_csv():
    recs = I.import_musiccaps_csv(DATA / "musiccaps" / "musiccaps-public.csv")
    assert len(recs) == 5_521
    assert all(r.task == "music_caption" and r.text == r.answer and r.text for r in recs)
    assert {r.instruction for r in recs} == set(I.MUSIC_CAPTION_INSTRUCTIONS)


def test_caption_pairs_as_text_records_through_the_loader(tmp_path):
    """`captions:PAIRS` gives the pairs' captions as caption records, phrased as the audio
    twin's records are (caption_records), without reading the audio."""
    from mats.data.loading import load_training_records

    pairs = tmp_path / "pairs.jsonl"
    caps = ["A dog barks.", "Rain on a roof.", "A dog barks."]
    write_jsonl(pairs, [{"audio": f"missing/{i}.wav", "caption": c} for i, c in enumerate(caps)])
    recs = load_training_records([f"captions:{pairs}"])
    assert [r.text for r in recs] == caps and [r.answer for r in recs] == caps
    assert {r.task for r in recs} == {"sound_caption"}
    assert [r.instruction for r in recs] == [r.instruction for r in I.caption_records(caps)]
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"audio": "a.wav", "text": "no caption key"}])
    with pytest.raises(RecordError, match="caption"):
        load_training_records([f"captions:{bad}"])


def test_label_records_through_the_loader(tmp_path):
    """`labels:AUDIOTIA` gives N bare-label classification records per label, each phrased
    with an instruction that label's own records use; captions are not labels."""
    from mats.data.loading import load_training_records

    tia = tmp_path / "tia.jsonl"
    rows = [{"text": "A dog barking.", "instruction": "What is the sound?", "answer": "dog",
             "task": "classification"},
            {"text": "The sound of a dog.", "instruction": "Classify the sound.", "answer": "dog",
             "task": "classification"},
            {"text": "A flute playing.", "instruction": "Which instrument is this?",
             "answer": "flute", "task": "classification"},
            {"text": "Rain on a roof.", "instruction": "Describe the audio.",
             "answer": "Rain on a roof.", "task": "sound_caption"}]
    write_jsonl(tia, rows)
    recs = load_training_records([f"labels:{tia}"])
    n = I.LABEL_RECORDS_PER_LABEL
    assert [r.text for r in recs] == ["dog"] * n + ["flute"] * n
    assert all(r.answer == r.text and r.task == "classification" for r in recs)
    assert {r.instruction for r in recs[:n]} == {"What is the sound?", "Classify the sound."}
    assert {r.instruction for r in recs[n:]} == {"Which instrument is this?"}
    assert [r.instruction for r in load_training_records([f"labels:{tia}"])] == [
        r.instruction for r in recs]  # seeded: the same file gives the same records
    write_jsonl(tia, rows[3:])
    with pytest.raises(RecordError, match="no classification"):
        load_training_records([f"labels:{tia}"])


def test_instructions_deterministic_and_seeded():
    path = DATA / "audiocaps" / "val.csv"
    a, b = I.import_audiocaps_csv(path), I.import_audiocaps_csv(path)
    assert a == b
    c = I.import_audiocaps_csv(path, seed=1)
    assert [r.text for r in c] == [r.text for r in a]
    assert sum(x.instruction != y.instruction for x, y in zip(a, c)) > len(a) // 2


def test_bad_header_names_the_missing_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("audiocap_id,youtube_id,start_time,text\n1,x,0,a dog barks\n")
    with pytest.raises(RecordError, match=r"lacks column\(s\) \['caption'\]"):
        I.import_audiocaps_csv(bad)
    with pytest.raises(RecordError, match="caption_5"):
        I.import_clotho_csv(DATA / "audiocaps" / "val.csv")
    with pytest.raises(RecordError, match="file not found"):
        I.import_musiccaps_csv(tmp_path / "nope.csv")


MATS_ITEMS = [
    {"caption": "A dog barks.", "output": "A dog barks.", "task": "audiocaption",
     "instruction": ""},
    {"caption": "Soft piano.", "output": "Soft piano.", "task": "captioning"},
    {"caption": "A siren wails.", "output": "siren", "task": "cla_label", "instruction": ""},
    {"caption": "Rain.", "output": "yes", "task": "audio_qa", "instruction": "Is it raining?"},
    {"caption": "A cat.", "output": "(A) cat", "task": "Multiple Choice Question",
     "instruction": "Which animal? (A) cat (B) dog"},
    {"caption": "Guitar.", "output": "Guitar.", "task": "Music_Caption_v2", "instruction": "x"},
    {"caption": "Owl.", "output": "owl", "task": "SOUND_CLS", "instruction": "Name it."},
    {"caption": "Wind.", "output": "wind", "task": "open-ended question", "instruction": "What?"},
]


def test_mats_json_list_and_jsonl(tmp_path):
    js = tmp_path / "mats.json"
    js.write_text(json.dumps(MATS_ITEMS))
    recs = I.import_mats_json(js)
    assert [r.task for r in recs] == ["sound_caption", "music_caption", "classification", "aqa",
                                      "mcq", "music_caption", "classification", "aqa"]
    assert recs[0].instruction == I.instruction_for("sound_caption", 0)
    assert recs[1].instruction in I.MUSIC_CAPTION_INSTRUCTIONS  # missing -> filled in
    assert recs[2].instruction in I.CLASSIFICATION_INSTRUCTIONS
    assert (recs[3].text, recs[3].instruction, recs[3].answer) == ("Rain.", "Is it raining?", "yes")
    jl = tmp_path / "mats.jsonl"
    write_jsonl(jl, MATS_ITEMS)
    assert I.import_mats_json(jl) == recs


def test_mats_json_unmapped_task(tmp_path):
    js = tmp_path / "mats.json"
    js.write_text(json.dumps(MATS_ITEMS + [{"caption": "x", "output": "y", "task": "asr"}]))
    with pytest.raises(RecordError, match=r"\['asr'\]"):
        I.import_mats_json(js)


def test_mmau_bench(tmp_path):
    path = DATA / "mmau" / "mmau-test-mini.json"
    raw = json.loads(path.read_text())
    rows = I.import_mmau_json(path, tmp_path, require_audio=False)
    assert len(rows) == 1_000
    for row, obj in zip(rows, raw):
        validate_bench_line(row)
        assert row["task"] == "mcq" and row["answer"] in row["choices"]
        assert row["id"] == obj["id"] and row["domain"] == obj["task"]
        assert isinstance(row["category"], str) and row["difficulty"] == obj["difficulty"]
        assert Path(row["audio"]).is_absolute()
    assert {r["category"] for r in rows} == {"Reasoning", "Information Extraction"}
    with pytest.raises(RecordError, match="1000 of 1000 audio files not found.*first: .*3fe64f3d"):
        I.import_mmau_json(path, tmp_path)


def test_mmau_audio_resolved_in_either_layout(tmp_path):
    path = DATA / "mmau" / "mmau-test-mini.json"
    first = json.loads(path.read_text())[0]["audio_id"]  # ./test-mini-audios/<id>.wav
    wav = tmp_path / first
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    for audio_dir in (tmp_path, wav.parent):
        rows = I.import_mmau_json(path, audio_dir, require_audio=False)
        assert rows[0]["audio"] == str(wav.resolve())
    with pytest.raises(RecordError, match="999 of 1000"):
        I.import_mmau_json(path, tmp_path)


def test_clotho_bench():
    rows = I.import_clotho_bench(DATA / "clotho" / "test.csv", "/no/audio", require_audio=False)
    table = csv_rows(DATA / "clotho" / "test.csv")
    assert len(rows) == 1_045
    assert all(validate_bench_line(r) and len(r["captions"]) == 5 for r in rows)
    assert rows[0]["audio"] == str(Path("/no/audio") / table[0]["file_name"])


def test_audiocaps_bench_groups_captions_per_clip(tmp_path):
    path = DATA / "audiocaps" / "test.csv"
    table = csv_rows(path)
    first = table[0]
    # An AudioSet-style download: "Y<youtube_id>.flac" in a subfolder.
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / f"Y{first['youtube_id']}.flac").write_bytes(b"fLaC")
    rows = I.import_audiocaps_bench(path, tmp_path, require_audio=False)
    assert len(rows) == 975 and sum(len(r["captions"]) for r in rows) == 4_875
    expected = [t["caption"] for t in table
                if (t["youtube_id"], t["start_time"]) == (first["youtube_id"], first["start_time"])]
    assert rows[0]["captions"] == expected and len(expected) == 5
    assert rows[0]["audio"] == str((tmp_path / "audio" / f"Y{first['youtube_id']}.flac").resolve())


def test_esc50_bench():
    path = DATA / "esc50" / "esc50.csv"
    rows = I.import_esc50_bench(path, "/no/audio", require_audio=False)
    assert len(rows) == 2_000
    labels = rows[0]["labels"]
    assert len(labels) == 50 and len(set(labels)) == 50
    assert "crying baby" in labels and "dog" in labels and not any("_" in x for x in labels)
    assert all(r["label"] in r["labels"] and r["labels"] == labels for r in rows)
    esc_map = json.loads((DATA / "labels" / "ESC50_class_labels_indices.json").read_text())
    assert labels == [I.readable_label(k) for k, _ in sorted(esc_map.items(), key=lambda kv: kv[1])]
    fold1 = I.import_esc50_bench(path, "/no/audio", folds=[1], require_audio=False)
    assert len(fold1) == 400 and {r["fold"] for r in fold1} == {1} and fold1[0]["labels"] == labels
    with pytest.raises(RecordError, match=r"fold\(s\) \[7\]"):
        I.import_esc50_bench(path, "/no/audio", folds=[7], require_audio=False)


def test_bench_lines_round_trip(tmp_path):
    rows = I.import_esc50_bench(DATA / "esc50" / "esc50.csv", "/no/audio", folds=[2],
                                require_audio=False)
    write_jsonl(tmp_path / "esc.jsonl", rows)
    assert read_bench(tmp_path / "esc.jsonl") == rows
