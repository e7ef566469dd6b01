"""`data.train` entries: each kind from the real-format fixture files, records read lazily with
errors naming the file and line, bad entries refused before any record, and a model trained on
the real formats mixed."""

import json
from collections.abc import Iterator

import pytest
from conftest import FIXTURE_DATA, tiny_run_config

from mats.data import importers as I
from mats.data.loading import iter_training_records, load_training_records, parse_training_spec
from mats.data.records import AudioTIARecord, RecordError, write_jsonl

AUDIOCAPS = FIXTURE_DATA / "audiocaps" / "train.csv"
CLOTHO = FIXTURE_DATA / "clotho" / "train.csv"
MUSICCAPS = FIXTURE_DATA / "musiccaps" / "musiccaps-public.csv"
MATS_ANNOTATION = FIXTURE_DATA / "mats" / "train_annotation.json"  # {"annotation": [...]}, one line
RECORD = {"text": "A dog barks.", "instruction": "What is it?", "answer": "dog", "task": "classification"}


@pytest.mark.parametrize(
    "kind,importer,path,n",
    [
        ("audiocaps:", I.import_audiocaps_csv, AUDIOCAPS, 6),
        ("clotho:", I.import_clotho_csv, CLOTHO, 25),
        ("musiccaps:", I.import_musiccaps_csv, MUSICCAPS, 6),
        ("mats:", I.import_mats_json, MATS_ANNOTATION, 6),
        ("", I.import_mats_json, MATS_ANNOTATION, 6),  # a bare .json path: the official MATS JSON
    ],
    ids=["audiocaps", "clotho", "musiccaps", "mats", "bare-json"],
)
def test_each_real_format_kind(kind, importer, path, n):
    recs = load_training_records([f"{kind}{path}"])
    assert len(recs) == n and recs == importer(path)
    assert recs == list(iter_training_records([f"{kind}{path}"]))


def test_mats_annotation_layout_fixture():
    """The official layout's records: tasks mapped, empty instructions phrased, texts kept."""
    recs = load_training_records([f"mats:{MATS_ANNOTATION}"])
    assert [r.task for r in recs] == ["sound_caption", "sound_caption", "music_caption", "classification", "aqa", "aqa"]
    assert recs[0].text == recs[0].answer == "A woman talks nearby as water pours"
    assert recs[0].instruction == I.instruction_for("sound_caption", 0)  # empty in the file
    assert recs[1].instruction == "Describe the following audio in a caption."
    assert (recs[3].answer, recs[4].instruction, recs[4].answer) == ("dog", "Is there water in the audio?", "yes")


def test_mats_json_both_layouts_and_jsonl_give_the_same_records(tmp_path):
    items = json.loads(MATS_ANNOTATION.read_text())["annotation"]
    want = load_training_records([f"mats:{MATS_ANNOTATION}"])
    layouts = {
        "list.json": json.dumps(items),
        "list_indented.json": json.dumps(items, indent=2),
        "annotation_indented.json": json.dumps({"annotation": items}, indent=4),
        "items.jsonl": "\n".join(json.dumps(o) for o in items) + "\n",
    }
    for name, text in layouts.items():
        (tmp_path / name).write_text(text)
        assert load_training_records([f"mats:{tmp_path / name}"]) == want, name


def test_mats_json_that_is_neither_layout(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [RECORD]}, indent=2))
    with pytest.raises(RecordError, match=r'bad.json: expected a list of objects or \{"annotation": \[...\]\}.*data'):
        load_training_records([str(bad)])
    bad.write_text(json.dumps({"annotation": [RECORD, 3]}))
    with pytest.raises(RecordError, match=r"bad.json: item 2: expected a JSON object"):
        load_training_records([str(bad)])
    bad.write_text(json.dumps({"annotation": [{"caption": "x", "output": "y", "task": "asr"}]}))
    with pytest.raises(RecordError, match=r"bad.json: cannot map task value\(s\) \['asr'\]"):
        load_training_records([str(bad)])


def test_entries_in_order_and_max_records(tmp_path):
    tia = tmp_path / "tia.jsonl"
    write_jsonl(tia, [RECORD, {**RECORD, "answer": "cat"}])
    specs = [str(tia), f"audiocaps:{AUDIOCAPS}", "synthetic:3", f"clotho:{CLOTHO}"]
    recs = load_training_records(specs)
    assert len(recs) == 2 + 6 + 3 + 25
    assert [r.answer for r in recs[:2]] == ["dog", "cat"]
    assert recs[2:8] == I.import_audiocaps_csv(AUDIOCAPS) and recs[11:] == I.import_clotho_csv(CLOTHO)
    assert load_training_records(specs, max_records=9) == recs[:9]
    assert list(iter_training_records(specs)) == recs


def test_records_are_read_lazily_with_the_file_and_line_in_errors(tmp_path):
    """JSONL line by line and CSV row by row: the records before a bad line come out, then the
    error names the file and the line (the line a CSV row starts on, quoted line breaks counted)."""
    tia = tmp_path / "tia.jsonl"
    tia.write_text(json.dumps(RECORD) + "\n\n" + json.dumps(RECORD) + "\n{not json\n")
    it = iter_training_records([str(tia)])
    assert isinstance(it, Iterator)
    assert next(it) == next(it)
    with pytest.raises(RecordError, match=f"^{tia}:4: not JSON"):
        next(it)

    # MusicCaps: the fifth row's caption holds a line break, so the sixth row starts on line 8
    # (not 7); give that row an empty caption.
    text = MUSICCAPS.read_bytes().decode("utf-8")
    last = text.index("ocCIB2bPq_Y")
    assert text.count("\n", 0, last) + 1 == 8
    bad = tmp_path / "musiccaps.csv"
    bad.write_text(text[:last] + 'ocCIB2bPq_Y,30,40,"/m/03q5t","[]","  ",6,False,False\n')
    it = iter_training_records([f"musiccaps:{bad}"])
    assert [next(it) for _ in range(5)] == I.import_musiccaps_csv(MUSICCAPS)[:5]
    with pytest.raises(RecordError, match=f"^{bad}:8: empty 'caption'"):
        next(it)


@pytest.mark.parametrize(
    "spec,message",
    [
        (
            "wavcaps:/data/x.json",
            r"unknown kind 'wavcaps'; an entry is one of synthetic:N, audiocaps:CSV, clotho:CSV, "
            r"musiccaps:CSV, mats:FILE, captions:PAIRS.jsonl, labels:AUDIOTIA.jsonl, PATH.json .* or PATH",
        ),
        # Not a lowercase kind: a path, which does not exist.
        ("AudioCaps:/data/train.csv", r"^AudioCaps:/data/train.csv: file not found"),
        ("audiocaps:", r"'audiocaps:' names no file"),
        (
            "clotho:/no/such/file.csv",
            r"^/no/such/file.csv: file not found \(data.train entry 'clotho:/no/such/file.csv'\)",
        ),
        ("synthetic:ten", r"synthetic:N needs a whole number"),
    ],
)
def test_bad_entries(spec, message):
    with pytest.raises(RecordError, match=message):
        parse_training_spec(spec)


def test_bad_entries_are_refused_before_any_record(tmp_path):
    good = tmp_path / "good.jsonl"
    write_jsonl(good, [RECORD])
    with pytest.raises(RecordError, match="unknown kind 'mp3'"):
        iter_training_records([str(good), "mp3:song.mp3"])  # raised by the call, not by iteration
    with pytest.raises(RecordError, match="data.train is empty"):
        iter_training_records([])
    with pytest.raises(RecordError, match=r"not a regular file"):
        iter_training_records([str(tmp_path)])
    assert parse_training_spec(str(good)) == ("audiotia", str(good))
    assert parse_training_spec(f"mats:{good}") == ("mats", str(good))  # mats: reads JSONL too
    assert parse_training_spec(str(MATS_ANNOTATION)) == ("mats", str(MATS_ANNOTATION))


def test_real_formats_train_two_steps(tmp_path):
    """A tiny model trains from the AudioCaps, Clotho and MusicCaps CSVs and an official MATS
    JSON in the {"annotation": [...]} layout, mixed in one data.train."""
    from mats.train import train

    run = tiny_run_config(tmp_path / "cache", max_steps=2)
    run.data.train = [f"audiocaps:{AUDIOCAPS}", f"clotho:{CLOTHO}", f"musiccaps:{MUSICCAPS}", str(MATS_ANNOTATION)]
    final = train(run, tmp_path / "run", progress=False)
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2] and all(s["loss"] > 0 for s in steps)
    # Santa's memory holds every distinct training text (fewer than memory_size): all four sources.
    memory_texts = json.loads((final / "santa.texts.json").read_text())
    records = load_training_records(run.data.train)
    assert {r.task for r in records} == {"sound_caption", "music_caption", "classification", "aqa"}
    assert sorted(memory_texts) == sorted({r.text for r in records})


# ---- records with audio (data.audio_train: the audio-supervised twin)


def _write_clips(root, n):
    from conftest import write_tone

    (root / "audio").mkdir(parents=True, exist_ok=True)
    return [write_tone(root / "audio" / f"{i}.wav", 300 + 40 * i, seconds=0.5) for i in range(n)]


def test_audiotia_records_with_audio_and_pairs_read_as_audio_records(tmp_path):
    from mats.data.loading import iter_audio_records
    from mats.data.records import iter_audiotia

    clips = _write_clips(tmp_path / "sw", 3)
    tasks = tmp_path / "sw" / "tasks.jsonl"
    write_jsonl(tasks, [dict(RECORD, audio="audio/0.wav"), dict(RECORD, task="aqa", audio=str(clips[1]))])
    pairs = tmp_path / "sw" / "pairs.jsonl"
    write_jsonl(pairs, [{"audio": "audio/2.wav", "caption": f"tone {i}", "sources": []} for i in range(2)])
    recs = list(iter_audio_records([str(pairs), str(tasks), str(pairs)]))
    # relative clips resolved against the file's directory, absolute ones kept
    assert [r.audio for r in recs] == [str(clips[2])] * 2 + [str(clips[0]), str(clips[1])] + [str(clips[2])] * 2
    assert [r.task for r in recs[2:4]] == ["classification", "aqa"] and recs[2].text == RECORD["text"]
    # pairs are caption records, their instructions drawn by index over all pair files, as the
    # text-only import of the same captions draws them
    captions = [r for r in recs if r.task == "sound_caption"]
    expected = I.caption_records(["tone 0", "tone 1", "tone 0", "tone 1"])
    assert [(r.text, r.instruction, r.answer) for r in captions] == [
        (r.text, r.instruction, r.answer) for r in expected
    ]
    assert len({r.instruction for r in captions}) > 1
    # text-only reading keeps the clip (resolved) but needs none; a record without one writes as before
    assert [r.audio for r in iter_audiotia(tasks)] == [str(clips[0]), str(clips[1])]
    assert list(AudioTIARecord(**RECORD).to_dict()) == ["text", "instruction", "answer", "task"]


def test_data_train_reads_a_file_whose_records_carry_audio_as_text_records(tmp_path):
    from mats.data.records import TASKS

    _write_clips(tmp_path, 1)
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [dict(RECORD, task=t, text=f"text {i}", audio="audio/0.wav") for i, t in enumerate(TASKS * 2)])
    recs = load_training_records([str(tasks)])
    assert len(recs) == 10 and all(r.audio == str(tmp_path / "audio" / "0.wav") for r in recs)


@pytest.mark.parametrize(
    "line,error",
    [
        (RECORD, r"tasks.jsonl:2: an audio-supervised record needs 'audio'"),
        (dict(RECORD, audio="audio/missing.wav"), r"tasks.jsonl:2: audio file not found: .*missing.wav"),
        (dict(RECORD, audio=""), r"tasks.jsonl:2: field 'audio' must be a non-empty string"),
        (dict(RECORD, audio=7), r"tasks.jsonl:2: field 'audio' must be"),
        ({"audio": "audio/0.wav", "caption": ""}, r"tasks.jsonl:2: field 'text' must be a non-empty string"),
        ({"audio": 3, "caption": "a tone"}, r"tasks.jsonl:2: field 'audio' must be"),
        ({"audio": "audio/0.wav"}, r"tasks.jsonl:2: neither an AudioTIA record with audio .* keys: \['audio'\]"),
        (dict(RECORD, task="singing", audio="audio/0.wav"), r"tasks.jsonl:2: unknown task 'singing'"),
    ],
    ids=[
        "no-audio",
        "missing-clip",
        "empty-audio",
        "audio-not-str",
        "empty-caption",
        "pair-audio-not-str",
        "neither",
        "bad-task",
    ],
)
def test_every_record_of_an_audio_source_has_a_clip(tmp_path, line, error):
    from mats.data.loading import iter_audio_records

    _write_clips(tmp_path, 1)
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [dict(RECORD, audio="audio/0.wav"), line])
    records = iter_audio_records([str(tasks)])
    assert next(records).audio == str(tmp_path / "audio" / "0.wav")  # lazily: the first is read
    with pytest.raises(RecordError, match=error):
        next(records)


def test_audio_sources_are_checked_before_any_record(tmp_path):
    from mats.data.loading import iter_audio_records

    with pytest.raises(RecordError, match="data.audio_train is empty"):
        iter_audio_records([])
    write_jsonl(tmp_path / "ok.jsonl", [dict(RECORD, audio="x.wav")])
    with pytest.raises(RecordError, match=r"gone.jsonl: file not found \(data.audio_train entry\)"):
        iter_audio_records([str(tmp_path / "ok.jsonl"), str(tmp_path / "gone.jsonl")])
