import numpy as np
import pytest

from mats.cache import text_digests
from mats.data.records import TASKS, AudioTIARecord
from mats.data.stream import Corpus, LazyMap, RecordFile, first_rows

RECORDS = [
    AudioTIARecord("a dog barks", "What is it?", "dog", "classification"),
    AudioTIARecord("rain\nthen thunder \u00e9\u6f22", "Describe.", 'Rain, then "thunder".', "sound_caption"),
    AudioTIARecord("a dog barks", "Is there a dog?", "yes", "aqa"),
]


def test_records_are_read_back_by_index_from_an_unnamed_file(tmp_path):
    rf = RecordFile(iter(RECORDS), tmp_path)
    assert not any(tmp_path.iterdir())  # unlinked when created: nothing to clean up, even after kill -9
    assert len(rf) == 3 and list(rf) == RECORDS
    assert rf[np.int64(1)] == RECORDS[1] and rf[-1] == RECORDS[2]  # a newline inside a text stays one line
    with pytest.raises(IndexError):
        rf[3]
    assert rf.task_ids.tolist() == [TASKS.index(r.task) for r in RECORDS]
    assert np.array_equal(rf.text_keys, text_digests(r.text for r in RECORDS))
    assert rf.offsets.dtype == np.int64 and rf.offsets[0] == 0 and np.all(np.diff(rf.offsets) > 0)
    assert first_rows(rf.text_keys).tolist() == [0, 1]  # the first record of each distinct text


def test_views_compute_what_is_read():
    calls = []
    prompts = LazyMap(RECORDS, lambda r: calls.append(r) or r.answer, cache=2)
    assert len(prompts) == 3 and prompts[2] == "yes" and prompts[np.int64(2)] == "yes"
    assert len(calls) == 1  # the second read came from the cache
    assert list(Corpus(RECORDS))[:3] == ["a dog barks", "What is it?", "dog"] and len(Corpus(RECORDS)) == 9


def test_records_with_audio_keep_their_clip_and_are_keyed_by_its_bytes(tmp_path):
    from conftest import write_tone

    from mats.cache import audio_digests

    a, b = write_tone(tmp_path / "a.wav", 300), write_tone(tmp_path / "b.wav", 500)
    copy = tmp_path / "copy.wav"
    copy.write_bytes(a.read_bytes())
    clips = [str(a), str(b), str(a), str(copy)]
    recs = [AudioTIARecord(f"t{i}", "Describe.", "x", "sound_caption", audio=c) for i, c in enumerate(clips)]
    rf = RecordFile(recs, tmp_path, audio=True)
    assert list(rf) == recs and rf[1].audio == str(b)
    assert np.array_equal(rf.audio_keys, audio_digests(clips))
    assert rf.audio_keys[0] == rf.audio_keys[3] != rf.audio_keys[1]  # content, not path
    assert first_rows(rf.audio_keys).tolist() == [0, 1]
    assert RecordFile(recs, tmp_path).audio_keys is None  # text-only: clips kept, not hashed
    with pytest.raises(ValueError, match="record 1 has no audio"):
        RecordFile([recs[0], RECORDS[0]], tmp_path, audio=True)
