"""0ad-data as a SoundWorld source: the unpack step (a fake .deb, no download), the curation rules,
the curated entries, split groups, and that only the full profile uses it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mats_lab.soundworld import sources, text
from mats_lab.soundworld.catalogue import CURATED, zeroad_group

ROOT = Path(__file__).resolve().parents[3]
build_module = importlib.import_module("mats_lab.soundworld.build")  # the package exports build() by that name


def _curate_script():
    spec = importlib.util.spec_from_file_location("soundworld_curate", ROOT / "scripts" / "soundworld_curate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ogg(path: Path, seconds: float = 0.5) -> None:
    t = np.arange(int(seconds * 22050)) / 22050
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050, format="OGG", subtype="VORBIS")


def test_only_the_full_profile_lists_0ad():
    assert "0ad-data" in build_module.PROFILES["full"].packages
    assert "0ad-data" not in build_module.PROFILES["tiny"].packages  # tests and `make demo` never fetch it


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None, reason="needs dpkg-deb")
def test_unpack_keeps_only_the_audio_members_of_public_zip(tmp_path):
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: 0ad-data\nVersion: 0.0.26-1\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: test\n"
    )
    public = tree / sources.ZEROAD_ZIP
    public.parent.mkdir(parents=True)
    (tree / "usr/share/doc/0ad-data").mkdir(parents=True)
    (tree / "usr/share/doc/0ad-data/copyright").write_text("CC BY-SA 3.0\n")
    _ogg(tmp_path / "cow.ogg")
    with zipfile.ZipFile(public, "w") as zf:
        zf.write(tmp_path / "cow.ogg", "audio/actor/fauna/animal/cattle_01.ogg")
        zf.writestr("audio/LICENSE.txt", "Copyright (C) 2009 Wildfire Games. CC-by-sa 3.0\n")
        zf.writestr("audio/groups/fs_grass_left.xml", "<SoundGroup/>")
        zf.writestr("art/textures/stone.png", b"\x89PNG")
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    deb = cache / "debs" / "0ad-data_0.0.26-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(tree), str(deb)], check=True, capture_output=True)

    root = sources.fetch_package("0ad-data", cache)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [".unpacked", "audio/LICENSE.txt", "audio/actor/fauna/animal/cattle_01.ogg"]
    raws = sources.list_raw("0ad-data", root)
    assert [(r.id, r.hint) for r in raws] == [("0ad/actor/fauna/animal/cattle_01", "actor/fauna/animal/cattle_01")]
    assert sf.info(raws[0].path).duration == pytest.approx(0.5, abs=0.01)
    deb.unlink()  # a second fetch reuses the unpacked folder, .deb or not
    assert sources.fetch_package("0ad-data", cache) == root


def test_zip_members_cannot_escape_the_folder(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("audio/../../escape.ogg", b"x")
    with pytest.raises(sources.SourceError, match="outside"):
        sources.extract_audio_members(bad, tmp_path / "out")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("art/x.png", b"x")
    with pytest.raises(sources.SourceError, match="no audio members"):
        sources.extract_audio_members(empty, tmp_path / "out")


@pytest.mark.parametrize(
    ("rec_id", "label", "category"),
    [
        ("0ad/actor/fauna/animal/cattle_01", "cow", "animal"),
        ("0ad/actor/fauna/animal/peacock_call_01", "peacock", "animal"),
        ("0ad/actor/fauna/death/goat_12", "goat", "animal"),
        ("0ad/voice/global/civ_dog_bark", "dog", "animal"),
        ("0ad/voice/latin/civ/civ_female_attack_1", "woman speaking", "human"),
        ("0ad/voice/napatan/civ/civ_male_heal_2", "man speaking", "human"),
        ("0ad/actor/human/movement/Footsteps/Foorstep_Sand_Running", "footsteps", "human"),
        ("0ad/ambient/weather/rain_11", "rain", "nature"),
        ("0ad/ambient/water/river_fast_21", "river", "water"),
        ("0ad/resource/lumbering/lumber_tree_03", "chopping wood", "tools"),
        ("0ad/attack/weapon/swordhit_10a", "sword", "weapon"),
        ("0ad/music/Taiko_1", "taiko drum", "musical instrument"),
        ("0ad/interface/alarm/alarmvictory", None, ""),
        ("0ad/music/Celtica", None, ""),
        ("0ad/resource/lumbering/lumber_treeexpire_01", None, ""),
        ("0ad/something/new_01", None, ""),
    ],
)
def test_curation_rules(rec_id, label, category):
    value, reason = _curate_script().rule_for(sources.RawSource(rec_id, "0ad-data", "", rec_id[4:]))
    if label is None:
        assert value is None and reason
    else:
        assert value[:2] == (label, category) and value[2] and not reason


def test_curated_0ad_entries():
    curated = json.loads(CURATED.read_text())
    rec = {k: v for k, v in curated["recordings"].items() if v["source_package"] == "0ad-data"}
    exc = {k: v for k, v in curated["excluded"].items() if v["source_package"] == "0ad-data"}
    assert len(rec) >= 700 and all(reason["reason"] for reason in exc.values())
    others = {v["category"] for v in curated["recordings"].values() if v["source_package"] != "0ad-data"}
    assert {v["category"] for v in rec.values()} <= others  # no new categories
    for animal in ("cow", "chicken", "goat", "horse", "pig", "sheep", "camel", "elephant", "lion", "peacock"):
        cats = {v["category"] for v in rec.values() if v["label"] == animal}
        assert cats == {"animal"}, animal  # where the animals benchmark looks
    assert not [k for k in rec if k.startswith("0ad/interface/")]
    assert [k for k in rec if k.startswith("0ad/music/")] == ["0ad/music/Taiko_1", "0ad/music/Taiko_2"]
    same = [v["reason"] for v in exc.values() if v["reason"].startswith("same audio as ")]
    assert same and all(r.removeprefix("same audio as ") in rec for r in same)  # one copy kept, curated


def test_split_groups():
    assert zeroad_group("0ad/voice/greek/civ/civ_female_attack_1") == "0ad-voice/greek/female"
    assert zeroad_group("0ad/voice/greek/civ/civ_male_yes_1") == "0ad-voice/greek/male"
    assert zeroad_group("0ad/attack/weapon/swordhit_10b") == zeroad_group("0ad/attack/weapon/swordhit_10")
    assert zeroad_group("0ad/ambient/weather/wind_11") == "0ad/ambient/weather/wind_11"


def test_mass_labels_take_no_article():
    assert text.label_noun("rain") == "rain" and text.label_noun("footsteps") == "footsteps"
    assert text.label_noun("mining") == "mining" and text.label_noun("dog") == "a dog"
