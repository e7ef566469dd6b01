from pathlib import Path

import pytest

from mats.config import ConfigError, RunConfig, from_dict, load_config, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_presets():
    assert {p.stem for p in CONFIGS} >= {"tiny", "gpt2-laion", "vicuna7b-msclap"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_preset_parses_and_round_trips(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", ["gpt2-laion", "vicuna7b-msclap"])
def test_paper_presets_hold_the_paper_settings(name):
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    m = cfg.model
    assert (m.mapper.prefix_length, m.mapper.num_layers) == (40, 8)
    assert (m.lora.r, m.lora.alpha, m.lora.dropout) == (8, 32, 0.1)
    assert m.noise.sigma == 0.015
    assert (m.santa.k, m.santa.top_l, m.santa.tau, m.santa.lam) == (100, 32, 0.1, 0.3)
    lr, warm, batch = {"gpt2-laion": (5e-5, 2000, 128), "vicuna7b-msclap": (3e-5, 3000, 96)}[name]
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.train.batch_size) == (lr, warm, batch)


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  mapper:\n    prefix_len: 3\n")
    with pytest.raises(ConfigError, match="prefix_len"):
        load_config(p)


def test_bad_literal_is_an_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  santa:\n    mode: everything\n")
    with pytest.raises(ConfigError, match="santa.mode"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
