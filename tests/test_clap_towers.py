"""benchmarks/clap_towers.py: the tower-choice rule and the per-run configs."""

import importlib.util
import json

import pytest
from conftest import ROOT

from mats_lab.clap_train import MiniClapTrainConfig

spec = importlib.util.spec_from_file_location("clap_towers", ROOT / "benchmarks" / "clap_towers.py")
towers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(towers)


def runs(**scores):
    return {t: [{"val": {"val_score": s}} for s in ss] for t, ss in scores.items()}


def test_the_highest_mean_validation_score_wins():
    choice = towers.choose(runs(scratch=[0.30, 0.32, 0.31], aisfx=[0.40, 0.41, 0.39], both=[0.35, 0.36, 0.34]))
    assert choice["winner"] == "aisfx" and choice["runner_up"] == "both"
    assert choice["margin"] == pytest.approx(0.05) and choice["seed_spread"] == pytest.approx(0.02)
    assert choice["within_spread"] is False


def test_a_margin_inside_the_seed_spread_or_one_seed_asks_for_more_seeds():
    assert towers.choose(runs(scratch=[0.30, 0.36], aisfx=[0.34, 0.35]))["within_spread"] is True  # 0.015 < 0.06
    assert towers.choose(runs(scratch=[0.30], aisfx=[0.50]))["within_spread"] is True  # one seed each
    assert "runner_up" not in towers.choose(runs(scratch=[0.3]))


def test_run_config_changes_only_the_tower_the_seed_and_the_set_fields():
    base = MiniClapTrainConfig()
    cfg = towers.run_config(base, "both", 2, ["aisfx_views=1", "augment.mix_db=[5, 20]"])
    assert cfg.arch.audio_tower == "both" and cfg.seed == 2 and cfg.aisfx_views == 1
    assert cfg.augment.mix_db == (5.0, 20.0) and cfg.steps == base.steps and cfg.arch.width == base.arch.width


def test_subset_benches_pick_animals_and_real_recordings(tmp_path):
    recordings = [
        {"label": "cow", "category": "animal"},
        {"label": "dog", "category": "animal"},
        {"label": "rain", "category": "nature"},
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"recordings": recordings}))
    labels = ["cow", "dog", "rain"]
    rows = [
        {"audio": "a.wav", "task": "classification", "label": "cow", "labels": labels, "sources": ["0ad/cattle_01"]},
        {"audio": "b.wav", "task": "classification", "label": "dog", "labels": labels, "sources": ["tuxpaint/dog"]},
        {"audio": "c.wav", "task": "classification", "label": "rain", "labels": labels, "sources": ["0ad/rain"]},
    ]
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "sound_classification.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    subsets = towers.subset_benches(tmp_path)
    assert [r["label"] for r in subsets["animals"]] == ["cow", "dog"]
    assert all(r["labels"] == ["cow", "dog"] for r in subsets["animals"])
    assert [r["label"] for r in subsets["real"]] == ["cow", "rain"] and subsets["real"][0]["labels"] == labels
    assert [r["label"] for r in subsets["real animals"]] == ["cow"]
