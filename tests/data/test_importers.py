"""The importers against the real formats.

Each test reads our few-row copies of the real files (tests/fixtures/data, byte for byte from
../shared/data) and checks exact parsed values. The tests named `..._full_file...` check what
only the whole files show (README row counts, every phrasing used, every row valid): they read
SHARED_DATA and are skipped when it is not beside the repository.
"""

import csv
import json
from pathlib import Path

import pytest
from conftest import FIXTURE_DATA, shared_file

from mats.data import importers as I
from mats.data.records import RecordError, read_bench, validate_bench_line, write_jsonl

DATA = FIXTURE_DATA


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_caption_csv(importer, path, task, phrasings):
    """The records of a one-caption-per-row CSV: every caption in order, stripped, each with
    its index's phrasing; returns them."""
    recs = importer(path)
    rows = csv_rows(path)
    assert [r.text for r in recs] == [row["caption"].strip() for row in rows]
    assert all(r.task == task and r.answer == r.text and r.text for r in recs)
    assert [r.instruction for r in recs] == [I.instruction_for(task, i) for i in range(len(rows))]
    assert {r.instruction for r in recs} <= set(phrasings)
    return recs


@pytest.mark.parametrize("split,n", [("train", 6), ("val", 15), ("test", 15)])
def test_audiocaps_csv(split, n):
    recs = check_caption_csv(
        I.import_audiocaps_csv, DATA / "audiocaps" / f"{split}.csv", "sound_caption", I.SOUND_CAPTION_INSTRUCTIONS
    )
    assert len(recs) == n
    # The files have CRLF line ends and a few curly quotes: neither may leak into a caption.
    first = {
        "train": "A woman talks nearby as water pours",
        "val": "Rustling occurs, ducks quack and water splashes, followed by an adult female "
        "and adult male speaking and duck calls being blown",
        "test": "Constant rattling noise and sharp vibrations",
    }
    assert recs[0].text == first[split]
    if split == "train":
        assert [r.text for r in recs[3:]] == [
            "Wind is blowing and it\u2019s raining",
            "Loud sneezing and then \u201cbless you\u201d is heard",
            "Motorcycle accelerates before a man yells \u201cgo, go, go!",
        ]


@pytest.mark.parametrize("split,n", [("train", 49_838), ("val", 2_475), ("test", 4_875)])
def test_audiocaps_csv_full_files(split, n):
    recs = check_caption_csv(
        I.import_audiocaps_csv, shared_file(f"audiocaps/{split}.csv"), "sound_caption", I.SOUND_CAPTION_INSTRUCTIONS
    )
    assert len(recs) == n  # README row counts
    assert {r.instruction for r in recs} == set(I.SOUND_CAPTION_INSTRUCTIONS)


def check_clotho_csv(path):
    """Five records per clip, row by row, caption_1..caption_5, stripped; returns them."""
    recs = I.import_clotho_csv(path)
    rows = csv_rows(path)
    assert len(recs) == 5 * len(rows)
    assert [r.text for r in recs[5:10]] == [rows[1][f"caption_{k}"].strip() for k in range(1, 6)]
    assert [r.text for r in recs] == [row[c].strip() for row in rows for c in I.CLOTHO_CAPTION_COLUMNS]
    assert all(r.text.strip() and r.task == "sound_caption" for r in recs)
    return recs


def test_clotho_csv_five_records_per_clip():
    recs = check_clotho_csv(DATA / "clotho" / "train.csv")
    assert len(recs) == 5 * 5
    assert recs[8].text == (
        "He sighed as he turned the pages of the book, stopping to scan the information."
    )  # a quoted caption with a comma
    # Real captions with trailing spaces come out stripped.
    assert recs[14].text == "People are talking at a sports event while a person is saying something."
    assert recs[15].text == "Someone is playing a video game and using the control device."


def test_clotho_csv_full_file():
    assert len(check_clotho_csv(shared_file("clotho/train.csv"))) == 5 * 3_839


def test_musiccaps_csv():
    recs = check_caption_csv(
        I.import_musiccaps_csv,
        DATA / "musiccaps" / "musiccaps-public.csv",
        "music_caption",
        I.MUSIC_CAPTION_INSTRUCTIONS,
    )
    assert len(recs) == 6
    assert recs[3].text.startswith(
        "This music is an instrumental of the Christmas Carol \u201cYou Better Watch Out\u2019."
    )
    # Two real captions hold a line break inside their quoted field: kept, not a new row.
    assert "with a flute \nOr recorder and keyboard" in recs[4].text
    assert recs[5].text == (
        "This audio contains someone playing a classical piece on a cembalo.\nThis song may be playing at a theater."
    )


def test_musiccaps_csv_full_file():
    recs = check_caption_csv(
        I.import_musiccaps_csv,
        shared_file("musiccaps/musiccaps-public.csv"),
        "music_caption",
        I.MUSIC_CAPTION_INSTRUCTIONS,
    )
    assert len(recs) == 5_521
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
    rows = [
        {"text": "A dog barking.", "instruction": "What is the sound?", "answer": "dog", "task": "classification"},
        {
            "text": "The sound of a dog.",
            "instruction": "Classify the sound.",
            "answer": "dog",
            "task": "classification",
        },
        {
            "text": "A flute playing.",
            "instruction": "Which instrument is this?",
            "answer": "flute",
            "task": "classification",
        },
        {
            "text": "Rain on a roof.",
            "instruction": "Describe the audio.",
            "answer": "Rain on a roof.",
            "task": "sound_caption",
        },
    ]
    write_jsonl(tia, rows)
    recs = load_training_records([f"labels:{tia}"])
    n = I.LABEL_RECORDS_PER_LABEL
    assert [r.text for r in recs] == ["dog"] * n + ["flute"] * n
    assert all(r.answer == r.text and r.task == "classification" for r in recs)
    assert {r.instruction for r in recs[:n]} == {"What is the sound?", "Classify the sound."}
    assert {r.instruction for r in recs[n:]} == {"Which instrument is this?"}
    assert [r.instruction for r in load_training_records([f"labels:{tia}"])] == [
        r.instruction for r in recs
    ]  # seeded: the same file gives the same records
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
    {"caption": "A dog barks.", "output": "A dog barks.", "task": "audiocaption", "instruction": ""},
    {"caption": "Soft piano.", "output": "Soft piano.", "task": "captioning"},
    {"caption": "A siren wails.", "output": "siren", "task": "cla_label", "instruction": ""},
    {"caption": "Rain.", "output": "yes", "task": "audio_qa", "instruction": "Is it raining?"},
    {
        "caption": "A cat.",
        "output": "(A) cat",
        "task": "Multiple Choice Question",
        "instruction": "Which animal? (A) cat (B) dog",
    },
    {"caption": "Guitar.", "output": "Guitar.", "task": "Music_Caption_v2", "instruction": "x"},
    {"caption": "Owl.", "output": "owl", "task": "SOUND_CLS", "instruction": "Name it."},
    {"caption": "Wind.", "output": "wind", "task": "open-ended question", "instruction": "What?"},
]


def test_mats_json_list_and_jsonl(tmp_path):
    js = tmp_path / "mats.json"
    js.write_text(json.dumps(MATS_ITEMS))
    recs = I.import_mats_json(js)
    assert [r.task for r in recs] == [
        "sound_caption",
        "music_caption",
        "classification",
        "aqa",
        "mcq",
        "music_caption",
        "classification",
        "aqa",
    ]
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


def check_mmau(path, tmp_path):
    """Every item an mcq line keeping its id, MMAU task (as domain) and difficulty; returns them."""
    raw = json.loads(path.read_text())
    rows = I.import_mmau_json(path, tmp_path, require_audio=False)
    assert len(rows) == len(raw)
    for row, obj in zip(rows, raw):
        validate_bench_line(row)
        assert row["task"] == "mcq" and row["answer"] in row["choices"]
        assert row["id"] == obj["id"] and row["domain"] == obj["task"]
        assert isinstance(row["category"], str) and row["difficulty"] == obj["difficulty"]
        assert (row["question"], row["choices"], row["answer"]) == (obj["question"], obj["choices"], obj["answer"])
        assert Path(row["audio"]).is_absolute()
    assert {r["category"] for r in rows} == {"Reasoning", "Information Extraction"}
    return rows


def test_mmau_bench(tmp_path):
    path = DATA / "mmau" / "mmau-test-mini.json"
    rows = check_mmau(path, tmp_path)
    assert len(rows) == 7
    assert rows[0] == {
        "audio": str(tmp_path.resolve() / "test-mini-audios" / "3fe64f3d-282c-4bc8-a753-68f8f6c35652.wav"),
        "task": "mcq",
        "question": "Based on the given audio, identify the source of the speaking voice.",
        "choices": ["Man", "Woman", "Child", "Robot"],
        "answer": "Man",
        "id": "3fe64f3d-282c-4bc8-a753-68f8f6c35652",
        "category": "Reasoning",
        "sub-category": "Acoustic Source Inference",
        "difficulty": "medium",
        "dataset": "AudioSet",
        "domain": "sound",
    }
    assert rows[1]["category"] == "Reasoning"  # held as ["Reasoning"] in the file
    assert [r["domain"] for r in rows] == ["sound", "sound", "speech", "music", "sound", "speech", "speech"]
    assert rows[3]["answer"] == "Fr\u00e9d\u00e9ric Chopin"  # a \u escape in the file
    assert [len(r["choices"]) for r in rows] == [4, 4, 2, 4, 8, 4, 5]
    with pytest.raises(RecordError, match="7 of 7 audio files not found.*first: .*3fe64f3d"):
        I.import_mmau_json(path, tmp_path)


def test_mmau_bench_full_file(tmp_path):
    path = shared_file("mmau/mmau-test-mini.json")
    assert len(check_mmau(path, tmp_path)) == 1_000
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
    with pytest.raises(RecordError, match="6 of 7"):
        I.import_mmau_json(path, tmp_path)


def check_clotho_bench(path):
    """One line per clip, its 5 references stripped, audio expected at AUDIO_DIR/file_name."""
    rows = I.import_clotho_bench(path, "/no/audio", require_audio=False)
    table = csv_rows(path)
    assert len(rows) == len(table)
    assert all(validate_bench_line(r) and len(r["captions"]) == 5 for r in rows)
    assert rows[0]["audio"] == str(Path("/no/audio") / table[0]["file_name"])
    assert [r["captions"] for r in rows] == [[t[c].strip() for c in I.CLOTHO_CAPTION_COLUMNS] for t in table]
    return rows


def test_clotho_bench():
    rows = check_clotho_bench(DATA / "clotho" / "test.csv")
    assert [r["id"] for r in rows] == [
        "Santa Motor.wav",
        "Radio Garble.wav",
        "foley footsteps - raw.wav",
        "Metra Train.wav",
    ]
    assert rows[0]["audio"] == "/no/audio/Santa Motor.wav"
    assert rows[3]["captions"][0] == ("A train coming down the track with cars passing by on the side of it,")


def test_clotho_bench_full_file():
    assert len(check_clotho_bench(shared_file("clotho/test.csv"))) == 1_045


def check_audiocaps_bench(path, tmp_path):
    """Captions grouped per (youtube_id, start_time), in order of first appearance, though the
    real files interleave the clips; the first clip's audio found as "audio/Y<id>.flac"."""
    table = csv_rows(path)
    first = table[0]
    # An AudioSet-style download: "Y<youtube_id>.flac" in a subfolder.
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / f"Y{first['youtube_id']}.flac").write_bytes(b"fLaC")
    rows = I.import_audiocaps_bench(path, tmp_path, require_audio=False)
    clips = list(dict.fromkeys((t["youtube_id"], t["start_time"]) for t in table))
    assert [r["id"] for r in rows] == [f"{y}_{s}" for y, s in clips]
    assert [r["captions"] for r in rows] == [
        [t["caption"] for t in table if (t["youtube_id"], t["start_time"]) == clip] for clip in clips
    ]
    assert sum(len(r["captions"]) for r in rows) == len(table)
    assert len(rows[0]["captions"]) == 5
    assert rows[0]["audio"] == str((tmp_path / "audio" / f"Y{first['youtube_id']}.flac").resolve())
    return rows


def test_audiocaps_bench_groups_captions_per_clip(tmp_path):
    rows = check_audiocaps_bench(DATA / "audiocaps" / "test.csv", tmp_path)
    assert [r["id"] for r in rows] == ["7fmOlUlwoNg_20", "DlWd7Wmdi1E_150", "yL3gKa6YLoM_40"]
    assert rows[0]["captions"] == [
        "Constant rattling noise and sharp vibrations",
        "Vibrations and rattling with people speaking in the distance",
        "A machine is making clicking sound as people talk in the background",
        "Clicking and screeching metal with people speaking",
        "A machine makes stitching sounds while people are talking in the background",
    ]
    assert [len(r["captions"]) for r in rows] == [5, 5, 5]


def test_audiocaps_bench_full_file(tmp_path):
    rows = check_audiocaps_bench(shared_file("audiocaps/test.csv"), tmp_path)
    assert len(rows) == 975 and sum(len(r["captions"]) for r in rows) == 4_875
    assert all(len(r["captions"]) == 5 for r in rows)


def check_esc50(path):
    """Classification lines whose candidates are all 50 readable labels in target order (those of
    the label map), whichever folds are kept; returns all lines and those of fold 1."""
    rows = I.import_esc50_bench(path, "/no/audio", require_audio=False)
    table = csv_rows(path)
    labels = rows[0]["labels"]
    assert len(labels) == 50 and len(set(labels)) == 50
    assert "crying baby" in labels and "dog" in labels and not any("_" in x for x in labels)
    assert all(r["label"] in r["labels"] and r["labels"] == labels for r in rows)
    esc_map = json.loads((path.parents[1] / "labels" / "ESC50_class_labels_indices.json").read_text())
    assert labels == [I.readable_label(k) for k, _ in sorted(esc_map.items(), key=lambda kv: kv[1])]
    assert [(r["id"], r["label"], r["fold"]) for r in rows] == [
        (t["filename"], I.readable_label(t["category"]), int(t["fold"])) for t in table
    ]
    fold1 = I.import_esc50_bench(path, "/no/audio", folds=[1], require_audio=False)
    assert {r["fold"] for r in fold1} == {1} and fold1[0]["labels"] == labels
    assert [r["id"] for r in fold1] == [t["filename"] for t in table if t["fold"] == "1"]
    with pytest.raises(RecordError, match=r"fold\(s\) \[7\]"):
        I.import_esc50_bench(path, "/no/audio", folds=[7], require_audio=False)
    return rows, fold1


def test_esc50_bench():
    # One clip per class, class t from fold t % 5 + 1: fold 1 holds 10 classes, yet its lines
    # offer all 50 labels.
    rows, fold1 = check_esc50(DATA / "esc50" / "esc50.csv")
    assert len(rows) == 50 and len(fold1) == 10
    assert [r["label"] for r in fold1] == [
        "dog",
        "door wood knock",
        "train",
        "water drops",
        "footsteps",
        "helicopter",
        "rain",
        "crying baby",
        "washing machine",
        "cat",
    ]
    assert rows[0]["audio"] == "/no/audio/1-100032-A-0.wav"


def test_esc50_bench_full_file():
    rows, fold1 = check_esc50(shared_file("esc50/esc50.csv"))
    assert len(rows) == 2_000 and len(fold1) == 400


def test_bench_lines_round_trip(tmp_path):
    rows = I.import_esc50_bench(DATA / "esc50" / "esc50.csv", "/no/audio", folds=[2], require_audio=False)
    assert len(rows) == 10
    write_jsonl(tmp_path / "esc.jsonl", rows)
    assert read_bench(tmp_path / "esc.jsonl") == rows


def test_mmau_null_stays_null(tmp_path):
    """A null sub-category (or other metadata) stays None, not the text "None"."""
    items = json.loads((DATA / "mmau" / "mmau-test-mini.json").read_text())[:2]
    items[0]["sub-category"] = None
    items[1]["difficulty"] = None
    path = tmp_path / "mmau.json"
    path.write_text(json.dumps(items, indent=2))
    rows = I.import_mmau_json(path, tmp_path, require_audio=False)
    assert rows[0]["sub-category"] is None and rows[1]["difficulty"] is None
    assert rows[1]["sub-category"] == items[1]["sub-category"] and rows[0]["difficulty"] == "medium"
    write_jsonl(tmp_path / "back.jsonl", rows)
    assert read_bench(tmp_path / "back.jsonl")[0]["sub-category"] is None


def test_csv_errors_name_the_file_and_line(tmp_path):
    """Bench importers too: "<file>:<line>", the line the row starts on."""
    bad = tmp_path / "test.csv"
    text = (DATA / "clotho" / "test.csv").read_text(encoding="utf-8")
    bad.write_text(text + "x.wav,a,b,,d,e\n", encoding="utf-8")
    n = text.count("\n") + 1
    with pytest.raises(RecordError, match=f"^{bad}:{n}: empty 'caption_3'"):
        I.import_clotho_bench(bad, "/no/audio", require_audio=False)
    with pytest.raises(RecordError, match=f"^{bad}:{n}: empty 'caption_3'"):
        I.import_clotho_csv(bad)
    bad.write_bytes(b"file_name,caption_1,caption_2,caption_3,caption_4,caption_5\na,b,c,d,e,f\n\xff\xfe,x\n")
    with pytest.raises(RecordError, match=f"^{bad}:3: not UTF-8"):
        I.import_clotho_csv(bad)


MUSICCAPS = DATA / "musiccaps" / "musiccaps-public.csv"


def test_musiccaps_bench(tmp_path):
    """One music_caption line per clip; ?split=eval keeps is_audioset_eval True (rows 0, 2, 4);
    the audio found under the names MusicCaps downloaders write."""
    table = csv_rows(MUSICCAPS)
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "[-0Gj8-vB1q4]-[30-40].wav").write_bytes(b"RIFF")  # huggingface-style name
    (tmp_path / "wav" / "-8C-gydUbR8.flac").write_bytes(b"fLaC")
    (tmp_path / "wav" / "YUfZP677y3Dc_30.wav").write_bytes(b"RIFF")  # AudioSet-style name
    rows = I.import_musiccaps_bench(MUSICCAPS, tmp_path, require_audio=False)
    assert [r["id"] for r in rows] == [f"{t['ytid']}_{t['start_s']}" for t in table]
    assert [r["captions"] for r in rows] == [[t["caption"].strip()] for t in table]
    assert all(validate_bench_line(r)["task"] == "music_caption" for r in rows)
    assert rows[0]["audio"] == str((tmp_path / "wav" / "[-0Gj8-vB1q4]-[30-40].wav").resolve())
    assert rows[2]["audio"] == str((tmp_path / "wav" / "-8C-gydUbR8.flac").resolve())
    evals = I.import_musiccaps_bench(MUSICCAPS, tmp_path, split="eval")  # every eval clip's audio is here...
    assert [r["id"] for r in evals] == ["-0Gj8-vB1q4_30", "-8C-gydUbR8_30", "UfZP677y3Dc_30"]
    train = I.import_musiccaps_bench(MUSICCAPS, tmp_path, split="train", require_audio=False)
    assert len(train) == 3 and {r["id"] for r in train}.isdisjoint(r["id"] for r in evals)
    with pytest.raises(RecordError, match="3 of 3 audio files not found"):  # ...and no train clip's
        I.import_musiccaps_bench(MUSICCAPS, tmp_path, split="train")
    with pytest.raises(RecordError, match="unknown MusicCaps split 'test'"):
        I.import_musiccaps_bench(MUSICCAPS, tmp_path, split="test")


def test_musiccaps_bench_full_file():
    path = shared_file("musiccaps/musiccaps-public.csv")
    assert len(I.import_musiccaps_bench(path, "/no/audio", split="eval", require_audio=False)) == 2_858
    assert len(I.import_musiccaps_bench(path, "/no/audio", require_audio=False)) == 5_521


MATS_TEST = DATA / "mats" / "test.json"  # an official-format MATS test JSON (a list)


def test_mats_bench(tmp_path):
    """Each official task becomes our benchmark line: captions grouped per clip, classification
    candidates per task string, QA with its answer type, an item with choices an mcq line."""
    items = json.loads(MATS_TEST.read_text())
    wav = tmp_path / items[0]["audio_id"]
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    rows = I.import_mats_bench(MATS_TEST, tmp_path, require_audio=False)
    assert all(validate_bench_line(r) for r in rows)
    assert [r["task"] for r in rows] == ["sound_caption"] + ["classification"] * 3 + [
        "music_caption",
        "aqa",
        "aqa",
        "mcq",
    ]
    cap = rows[0]
    assert cap["audio"] == str(wav.resolve()) and cap["id"] == items[0]["audio_id"]
    assert cap["captions"] == [o["output"] for o in items[:5]]  # the 5 items of one clip, in order
    assert [r["label"] for r in rows[1:4]] == ["dog", "door wood knock", "train"]
    assert all(r["labels"] == ["dog", "door wood knock", "train"] for r in rows[1:4])
    assert (rows[5]["question"], rows[5]["answer"], rows[5]["answer_type"]) == ("Is a dog barking?", "no", "yes_no")
    assert (rows[6]["answer"], rows[6]["answer_type"]) == ("people", "open")
    mcq = rows[7]
    assert (mcq["choices"], mcq["answer"]) == (["Man", "Woman", "Child", "Robot"], "Man")
    assert mcq["question"] == "Based on the given audio, identify the source of the speaking voice."
    with pytest.raises(RecordError, match="7 of 8 audio files not found"):
        I.import_mats_bench(MATS_TEST, tmp_path)
    # The {"annotation": [...]} layout and JSONL give the same lines.
    (tmp_path / "ann.json").write_text(json.dumps({"annotation": items}, indent=2))
    write_jsonl(tmp_path / "items.jsonl", items)
    for other in ("ann.json", "items.jsonl"):
        assert I.import_mats_bench(tmp_path / other, tmp_path, require_audio=False) == rows


def test_mats_bench_errors(tmp_path):
    items = json.loads(MATS_TEST.read_text())
    path = tmp_path / "t.json"
    cases = [
        ({**items[0], "task": "speech_recognition"}, r"t.json: cannot map task value\(s\) \['speech_recognition'\]"),
        ({k: v for k, v in items[0].items() if k != "audio_id"}, r"t.json: item 2 lacks \['audio_id'\]"),
        ({**items[-1], "output": "Dog"}, r"t.json: item 2: output 'Dog' is not one of its choices"),
        ({**items[-2], "instruction": ""}, r"t.json: item 2: an aqa item needs its question"),
        ({**items[0], "output": " "}, r"t.json: item 2: empty 'output'"),
    ]
    for bad, message in cases:
        path.write_text(json.dumps([items[0], bad]))
        with pytest.raises(RecordError, match=message):
            I.import_mats_bench(path, tmp_path, require_audio=False)
    write_jsonl(tmp_path / "t.jsonl", [items[0], items[1], {**items[0], "task": "asr"}])
    with pytest.raises(RecordError, match=r"t.jsonl:3: cannot map task value\(s\) \['asr'\]"):
        I.import_mats_bench(tmp_path / "t.jsonl", tmp_path, require_audio=False)
