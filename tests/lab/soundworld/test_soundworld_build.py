"""SoundWorld tiny build: determinism, disjoint splits, valid records, text variety, audio.

The tiny profile is built once per session (downloads go to the shared cache, MATS_CACHE or
~/.cache/mats). It needs apt-get/dpkg-deb, fluidsynth and espeak-ng: on a non-Debian machine the
tests skip with that reason; CI is Debian, so they run there.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from mats.data import records
from mats_lab.soundworld import build, sources
from mats_lab.soundworld.build import BENCHES
from mats_lab.soundworld.splits import CLAP, HELDOUT

MISSING = [t for t in ("apt-get", "dpkg-deb", "fluidsynth", "espeak-ng") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"SoundWorld needs Debian tools {MISSING} (run scripts/install_system_deps.sh)"
)


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    cache = sources.default_cache()
    a = tmp_path_factory.mktemp("sw_a")
    b = tmp_path_factory.mktemp("sw_b")
    sa = build("tiny", a, seed=0, cache=cache, progress=False)
    sb = build("tiny", b, seed=0, cache=cache, progress=False)
    return a, b, sa, sb


def _manifest(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads((out / "manifest.json").read_text())["recordings"]}


def _jsonl_files(out: Path) -> list[Path]:
    return sorted(p.relative_to(out) for p in out.rglob("*.jsonl"))


def test_deterministic_for_a_seed(builds):
    a, b, sa, sb = builds
    assert _jsonl_files(a) == _jsonl_files(b) and len(_jsonl_files(a)) >= 10
    for rel in _jsonl_files(a) + [Path("manifest.json")]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    wav = sorted((a / "bench" / "audio").rglob("*.wav"))[0]
    assert wav.read_bytes() == (b / wav.relative_to(a)).read_bytes()


def test_second_run_reuses_outputs(builds):
    a, _, sa, _ = builds
    again = build("tiny", a, seed=0, progress=False)
    assert again["audio_files_written"] == 0
    assert again["clap_pairs"] == sa["clap_pairs"]


def test_a_different_seed_changes_the_data(builds, tmp_path):
    a, _, _, _ = builds
    build("tiny", tmp_path, seed=1, progress=False)
    assert (tmp_path / "clap" / "train.jsonl").read_bytes() != (a / "clap" / "train.jsonl").read_bytes()


def test_every_recording_in_exactly_one_split(builds):
    a, *_ = builds
    rows = json.loads((a / "manifest.json").read_text())["recordings"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert {r["split"] for r in rows} == {CLAP, HELDOUT}
    for r in rows:
        assert set(r) >= {"id", "source_package", "path", "label", "category", "description", "split"}
    # soundfont programs are held out whole: no program has clips in both splits by construction,
    # and some programs are held out
    gm = [r for r in rows if r["id"].startswith("gm/") and r["category"] == "musical instrument"]
    assert {r["split"] for r in gm} == {CLAP, HELDOUT}


def test_splits_disjoint_in_outputs(builds):
    a, *_ = builds
    split = {k: v["split"] for k, v in _manifest(a).items()}
    clap_rows = list(records.read_jsonl(a / "clap" / "train.jsonl")) + list(
        records.read_jsonl(a / "clap" / "val.jsonl")
    )
    assert clap_rows
    for row in clap_rows:
        assert row["sources"] and all(split[s] == CLAP for s in row["sources"]), row
    benches = sorted((a / "bench").glob("*.jsonl"))
    assert {p.stem for p in benches} == set(BENCHES)
    for p in benches:
        for row in records.read_jsonl(p):
            assert row["sources"] and all(split[s] == HELDOUT for s in row["sources"]), (p.name, row)


def test_records_validate(builds):
    a, _, summary, _ = builds
    tia = records.read_audiotia(a / "audiotia" / "train.jsonl")
    assert {r.task for r in tia} == set(records.TASKS)
    assert len(tia) == summary["audiotia_records"]
    for r in tia:
        if r.task == "mcq":
            opts = re.findall(r"\([A-D]\) (.*?)(?= \([A-D]\)| Respond)", r.instruction)
            assert r.answer in opts, r
        if r.task in ("sound_caption", "music_caption"):
            assert r.text == r.answer
    for p in sorted((a / "bench").glob("*.jsonl")):
        rows = records.read_bench(p)
        assert len(rows) >= 5, p.name
        for row in rows:
            if row["task"] == "classification":
                assert row["label"] in row["labels"]
            if row["task"] == "mcq":
                assert row["answer"] in row["choices"] and len(set(row["choices"])) == len(row["choices"])
            if p.stem == "aqa_yes_no":
                assert row["answer_type"] == "yes_no" and row["answer"] in ("yes", "no")
            if p.stem == "aqa_open":
                assert row["answer_type"] == "open"


def test_text_variety(builds):
    # Template text repeats by nature; a ratio of distinct strings >= 0.6 (captions) and >= 0.3
    # (classification descriptions, whose answers come from a few dozen labels) shows the
    # generators combine synonyms, orders and relations rather than emit one string per label.
    a, *_ = builds
    caps = [r["caption"] for r in records.read_jsonl(a / "clap" / "train.jsonl")]
    assert len(set(caps)) / len(caps) >= 0.6
    tia = records.read_audiotia(a / "audiotia" / "train.jsonl")
    texts = [r.text for r in tia if r.task == "classification"]
    assert len(set(texts)) / len(texts) >= 0.3
    instr = {r.instruction for r in tia if r.task == "sound_caption"}
    assert len(instr) >= 4
    for p in ("sound_caption", "music_caption"):
        for row in records.read_jsonl(a / "bench" / f"{p}.jsonl"):
            assert len(set(row["captions"])) >= 2


def test_captions_name_what_is_mixed(builds):
    a, *_ = builds
    man = _manifest(a)
    rows = list(records.read_jsonl(a / "clap" / "train.jsonl"))
    for row in rows + [
        dict(r, caption=c) for r in records.read_jsonl(a / "bench" / "sound_caption.jsonl") for c in r["captions"]
    ]:
        cap = row["caption"].lower()
        for sid in row["sources"]:
            rec = man[sid]
            if rec["category"] == "human" and rec["label"] == "speech":
                said = re.search(r'"(.*)"', rec["description"]).group(1)
                assert f'"{said}"' in cap, (cap, rec)
            else:
                assert rec["label"] in cap or rec["description"].lower() in cap, (cap, rec)


def test_audio_exists_and_decodes(builds):
    a, *_ = builds
    for p in [a / "clap" / "train.jsonl"] + sorted((a / "bench").glob("*.jsonl")):
        for row in list(records.read_jsonl(p))[:5]:
            wav = p.parent / row["audio"]
            info = sf.info(str(wav))
            assert info.samplerate == 16000 and info.channels == 1
            assert 5.0 <= info.frames / info.samplerate <= 10.0 + 1e-3
            x, _ = sf.read(str(wav))
            assert abs(x).max() > 0.01  # not silent


def test_clap_tasks_give_the_twin_audiotia_tasks_on_the_clap_scenes(builds):
    """clap/tasks.jsonl: the five AudioTIA tasks for exactly the clap/train.jsonl scenes, each
    record naming its clip, in about AudioTIA's shares (both in the summary)."""
    from mats.data.loading import iter_audio_records

    a, _, summary, _ = builds
    tasks = a / "clap" / "tasks.jsonl"
    recs = list(iter_audio_records([str(tasks)]))  # every record has a clip that exists
    assert {r.task for r in recs} == set(records.TASKS) and len(recs) == summary["clap_task_records"]
    train_clips = {str((a / "clap" / row["audio"]).resolve()) for row in records.read_jsonl(a / "clap" / "train.jsonl")}
    assert {r.audio for r in recs} == train_clips
    captions = {row["audio"]: row["caption"] for row in records.read_jsonl(a / "clap" / "train.jsonl")}
    for row in records.read_jsonl(tasks):
        if row["task"] in ("sound_caption", "music_caption", "aqa", "mcq"):
            assert row["text"] == captions[row["audio"]]  # the scene's (first) clap caption
    man = _manifest(a)
    sources = {
        str((a / "clap" / row["audio"]).resolve()): row["sources"]
        for row in records.read_jsonl(a / "clap" / "train.jsonl")
    }
    for r in recs:
        if r.task == "classification":  # the label of the scene's one foreground sound
            assert r.answer in {man[s]["label"] for s in sources[r.audio]}
    ours, theirs = summary["clap_task_shares"], summary["audiotia_task_shares"]
    assert set(ours) == set(theirs) == set(records.TASKS)
    for task in ("aqa", "classification", "mcq"):
        assert abs(ours[task] - theirs[task]) < 0.03, (task, ours, theirs)
    assert abs(ours["sound_caption"] + ours["music_caption"] - theirs["sound_caption"] - theirs["music_caption"]) < 0.03
