"""Pure parts of SoundWorld: opensfx.cat parsing, the MIDI writer, splits, text generators."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np

from mats_lab.soundworld import render, sources, text
from mats_lab.soundworld.catalogue import Clip, Recording
from mats_lab.soundworld.scenes import Event, Scene
from mats_lab.soundworld.splits import CLAP, HELDOUT, assign_splits


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 100)
    return buf.getvalue()


def test_read_opensfx_cat(tmp_path):
    wavs = [_wav_bytes(), _wav_bytes()[:44]]
    names = [b'"Cow". By someone.', b'"Nothing"']
    table = 8 * len(wavs)
    body, entries = b"", []
    for name, wav in zip(names, wavs):
        rec = bytes([len(name)]) + name + wav
        entries.append((0x80000000 | (table + len(body)), len(rec)))
        body += rec
    cat = tmp_path / "opensfx.cat"
    cat.write_bytes(b"".join(struct.pack("<II", o, s) for o, s in entries) + body)
    out = sources.read_opensfx_cat(cat)
    assert [n for n, _ in out] == ['"Cow". By someone.', '"Nothing"']
    assert out[0][1] == wavs[0] and out[0][1].startswith(b"RIFF")


def test_write_midi_header_and_events(tmp_path):
    path = tmp_path / "x.mid"
    render.write_midi(path, [render.Note(0.0, 0.5, 60, 100), render.Note(1.0, 0.5, 64, 90)], [(0.0, 0, 40)])
    data = path.read_bytes()
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    n = struct.unpack(">I", data[18:22])[0]
    assert len(data) == 22 + n and data.endswith(b"\xff\x2f\x00")
    assert bytes([0xC0, 40]) in data and bytes([0x90, 60, 100]) in data and bytes([0x80, 64, 0]) in data


def test_normalise_hits_target_rms():
    x = (0.01 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)
    y = render.normalise(x, rms_db=-20.0)
    assert abs(20 * np.log10(np.sqrt(np.mean(y**2))) + 20.0) < 0.5


def _rec(rid: str, label: str, group: str | None = None) -> Recording:
    return Recording(rid, "p", "sfx", label, "animal", f"a {label}", group or rid, [Clip("x.wav", 1.0)])


def test_splits_deterministic_grouped_and_complete():
    recs = [_rec(f"r{i}", f"l{i % 5}") for i in range(40)] + [_rec("g1", "z", "G"), _rec("g2", "z", "G")]
    a = assign_splits(recs, seed=0)
    b = assign_splits([_rec(r.id, r.label, r.group) for r in recs], seed=0)
    assert a == b and set(a.values()) == {CLAP, HELDOUT}
    assert a["g1"] == a["g2"]  # one group, one split
    for lab in {r.label for r in recs if r.label != "z"}:  # every label with >= 2 groups has both splits
        assert {a[r.id] for r in recs if r.label == lab} == {CLAP, HELDOUT}
    assert assign_splits(recs, seed=3) != a


def _event(label: str, onset: float, dur: float = 1.0) -> Event:
    return Event(f"id/{label}", label, "animal", "sfx", f"a {label} calling", "x.wav", dur, onset, 0.0)


def test_relations_follow_timing():
    rng = np.random.default_rng(0)
    seq = Scene("s", "sound", 6.0, "normal", [_event("dog", 0.5), _event("cow", 3.0)])
    sim = Scene("s", "sound", 6.0, "normal", [_event("dog", 0.5, 3.0), _event("cow", 1.0)])
    seq_words = ("followed by", "then", "before", "after which", "afterwards")
    sim_words = ("while", "at the same time", "together with", "at once")
    for _ in range(30):
        c = text.sound_caption(seq, rng).lower()
        assert any(w in c for w in seq_words) and not any(w in c for w in sim_words), c
        c = text.sound_caption(sim, rng).lower()
        assert any(w in c for w in sim_words), c


def test_qa_answers_are_true_of_the_scene():
    rng = np.random.default_rng(1)
    scene = Scene("s", "sound", 6.0, "loud", [_event("dog", 0.5), _event("cow", 3.0)])
    vocab = {"animal": ["dog", "cow", "sheep", "horse"]}
    for _ in range(20):
        for qa in text.qa_items(scene, vocab, rng):
            q, a = qa["question"], qa["answer"]
            if q.startswith(("Is there", "Can you hear", "Does the audio contain")):
                assert (a == "yes") == any(f" {lab}" in q for lab in ("dog", "cow")), qa
            if "comes first" in q:
                assert a == "dog"
            if q.startswith("How many"):
                assert a == "two"
            if "loud or" in q:
                assert a == "loud"
            if "speaking" in q or "talk" in q:
                assert a == "no"
            m = text.mcq_from(qa, vocab, [], rng)
            if m:
                assert m["answer"] in m["choices"] and len(set(m["choices"])) == len(m["choices"])
