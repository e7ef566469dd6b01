import dataclasses
import json
from pathlib import Path

import pytest

from mats.config import (
    ConfigError,
    ModelConfig,
    RunConfig,
    apply_overrides,
    choices,
    cli_overrides,
    field_types,
    from_dict,
    load_config,
    load_model_config,
    load_yaml,
    to_dict,
)

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


# --------------------------------------------------------------------------------------------
# every YAML under configs/ parses with its dataclass (litgpt's test_config_hub)

ROOT = Path(__file__).resolve().parents[1]


def _loader(path: Path):
    """The loader of a YAML under configs/, by where it lives."""
    rel = path.relative_to(ROOT / "configs")
    if rel.parts[0] == "report":
        from mats_lab.report.spec import load_spec

        return load_spec
    if rel.parts[0] == "mini":
        from mats_lab.clap_train import MiniClapTrainConfig
        from mats_lab.lm_pretrain import MiniLMRecipe

        cls = {"clap.yaml": MiniClapTrainConfig, "lm.yaml": MiniLMRecipe}[rel.name]
        return lambda p: load_yaml(cls, p)
    assert len(rel.parts) == 1, f"{rel}: no loader for this folder"
    return load_config


ALL_YAML = sorted((ROOT / "configs").rglob("*.yaml"))


def test_every_yaml_has_a_known_home():
    homes = {p.relative_to(ROOT / "configs").parts[0] if p.parent != ROOT / "configs" else "." for p in ALL_YAML}
    assert homes == {".", "mini", "report"}


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_yaml_under_configs_parses_with_its_dataclass(path):
    cfg = _loader(path)(path)
    assert dataclasses.is_dataclass(cfg)
    if path.parent.name != "report":  # the report spec normalises after loading
        assert from_dict(type(cfg), to_dict(cfg)) == cfg


def test_mini_recipes_hold_the_dataclass_defaults():
    """configs/mini/*.yaml are what `make model` trains with; they must equal the defaults the
    shipped encoder and LM were built with (same values, same types: 2.0 stays a float)."""
    from mats_lab.clap_train import MiniClapTrainConfig
    from mats_lab.lm_pretrain import MiniLMRecipe

    for name, cls in (("clap", MiniClapTrainConfig), ("lm", MiniLMRecipe)):
        loaded = load_yaml(cls, ROOT / "configs" / "mini" / f"{name}.yaml")
        assert loaded == cls()
        assert json.dumps(to_dict(loaded)) == json.dumps(to_dict(cls()))


def test_build_mini_defaults_point_at_the_mini_recipes():
    from mats_lab.build_mini import BuildPaths

    paths = BuildPaths()
    assert (ROOT / paths.clap_config).is_file() and (ROOT / paths.lm_config).is_file()


def test_shipped_models_load_through_the_loader():
    from mats.encoders.mini import MiniClapArch
    from mats_lab.clap_train import MiniClapTrainConfig

    assets = ROOT / "src" / "mats" / "assets"
    for config in sorted(assets.glob("*/config.json")):
        assert isinstance(load_model_config(config), ModelConfig)
    meta = json.loads((assets / "mats-mini" / "encoder" / "mini_clap.json").read_text())
    assert meta["format"] == "mats-mini-clap/1"
    # the shipped encoder has the architecture the recipe (configs/mini/clap.yaml) trains
    assert from_dict(MiniClapArch, meta["arch"]) == MiniClapTrainConfig().arch


# --------------------------------------------------------------------------------------------
# the strict loader: errors name the file and the dotted key


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  lr: fast\n", "train.lr must be a float, got 'fast'"),
        ("train:\n  max_steps: 2.5\n", "train.max_steps must be an int, got 2.5"),
        ("train:\n  max_steps: true\n", "train.max_steps must be an int, got True"),
        ("model:\n  santa:\n    normalize_audio: maybe\n", "model.santa.normalize_audio must be true or false"),
        ("model:\n  lora:\n    target_modules: c_attn\n", "model.lora.target_modules must be a list"),
        ("model:\n  lora:\n    target_modules: [c_attn, 3]\n", "model.lora.target_modules[1] must be a str, got 3"),
        ("data:\n  max_records: many\n", "data.max_records must be an int or null"),
        ("train:\n  task_weights: {aqa: lots}\n", "train.task_weights.aqa must be a float"),
        ("train:\n  schedule: exponential\n", "train.schedule must be one of ['linear', 'cosine', 'constant']"),
        ("model: 3\n", "model must be a mapping"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_file_and_the_key(tmp_path, text, message):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value).startswith(f"{p}: ") and message in str(err.value)


def test_values_are_converted_to_their_field_type(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("train:\n  lr: 3e-4\n  grad_clip: 2\nmodel:\n  noise:\n    sigma: 0\n")  # 3e-4: a str to YAML 1.1
    cfg = load_config(p)
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.grad_clip, float) and isinstance(cfg.model.noise.sigma, float)


def test_unknown_keys_name_the_dotted_key_and_close_matches(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("train:\n  learning_rate: 1\n  warmup: 3\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown keys train.learning_rate, train.warmup \(did you mean "
        r"train.warmup_steps\?\)",
    ):
        load_config(p)
    p.write_text("model:\n  mapper:\n    zzz: 1\n")  # nothing close: the known keys are listed
    with pytest.raises(ConfigError, match=r"model.mapper.zzz \(known: model.mapper.clip_length"):
        load_config(p)


def test_nested_dataclasses_outside_run_config_load_strictly():
    from mats_lab.clap_train import MiniClapTrainConfig

    cfg = from_dict(MiniClapTrainConfig, {"augment": {"mix_db": [5, 20]}, "arch": {"mel": {"n_mels": 32}}})
    assert cfg.augment.mix_db == (5.0, 20.0) and cfg.arch.mel.n_mels == 32
    with pytest.raises(ConfigError, match="augment.snr_db must be a list of 2"):
        from_dict(MiniClapTrainConfig, {"augment": {"snr_db": [1, 2, 3]}}, "clap.yaml")
    with pytest.raises(ConfigError, match="^clap.yaml: unknown key arch.mel.nmels"):
        from_dict(MiniClapTrainConfig, {"arch": {"mel": {"nmels": 32}}}, "clap.yaml")


def test_a_config_check_runs_on_load(tmp_path):
    """MiniLMConfig.check (range checks between fields) runs when the YAML is loaded."""
    from mats_lab.lm_pretrain import MiniLMRecipe

    p = tmp_path / "lm.yaml"
    p.write_text("pretrain:\n  block_size: 512\n")
    with pytest.raises(ConfigError, match=f"^{p}: pretrain: block_size 512 exceeds n_positions 256"):
        load_yaml(MiniLMRecipe, p)


def test_missing_required_keys_are_named():
    @dataclasses.dataclass
    class Needs:
        name: str
        size: int = 1

    assert from_dict(Needs, {"name": "a"}) == Needs("a")
    with pytest.raises(ConfigError, match="spec.yaml: missing key.* name"):
        from_dict(Needs, {"size": 2}, "spec.yaml")


# --------------------------------------------------------------------------------------------
# dotted overrides


def test_overrides_set_typed_values_on_a_copy():
    cfg = RunConfig()
    new = apply_overrides(
        cfg,
        [
            "train.lr=3e-4",
            "model.santa.lam=0.9",
            "model.santa.mode=no_kmeans",
            "data.train=[a.jsonl, b.jsonl]",
            "data.max_records=null",
            "train.num_threads=2",
            "model.lm.path=2024",
            "train.task_weights={aqa: 2}",
            "model.prompt.answer_prefix= ",
        ],
    )
    assert (new.train.lr, new.model.santa.lam, new.model.santa.mode) == (3e-4, 0.9, "no_kmeans")
    assert new.data.train == ["a.jsonl", "b.jsonl"] and new.data.max_records is None and new.train.num_threads == 2
    assert new.model.lm.path == "2024"  # a str field keeps the text as written
    assert new.train.task_weights == {"aqa": 2.0} and new.model.prompt.answer_prefix == " "
    assert cfg == RunConfig()  # the original is untouched


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.lr=fast", "train.lr must be a float, got 'fast'"),
        ("model.santa.mode=everything", "model.santa.mode must be one of"),
        ("train.lrr=1", r"unknown key train.lrr \(did you mean train.lr\?\)"),
        ("lr=1", r"unknown key lr \(did you mean train.lr\?\)"),
        ("model.santa=1", "model.santa is a section"),
        ("train.lr", "must look like KEY=VALUE"),
    ],
)
def test_bad_overrides_are_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(RunConfig(), [item])


def test_overrides_run_the_config_check():
    from mats_lab.lm_pretrain import MiniLMRecipe

    with pytest.raises(ConfigError, match="pretrain: n_embd 256 is not divisible by n_head 3"):
        apply_overrides(MiniLMRecipe(), ["pretrain.n_head=3"])


def test_cli_flags_become_overrides():
    assert cli_overrides(["--train.lr", "3e-4", "--model.santa.lam=0.9", "--train.max-steps", "5"]) == [
        "train.lr=3e-4",
        "model.santa.lam=0.9",
        "train.max_steps=5",
    ]
    with pytest.raises(ConfigError, match="needs a value"):
        cli_overrides(["--train.lr"])
    with pytest.raises(ConfigError, match="unexpected argument 'extra'"):
        cli_overrides(["extra"])


def test_field_types_are_the_dotted_leaves():
    types = field_types(RunConfig)
    assert types["train.lr"] is float and types["data.train"] == list[str]
    assert "model.santa.lam" in types and "model.santa" not in types  # sections are walked
    assert "model.encoder.options" in types  # a dict is a leaf, set whole


# --------------------------------------------------------------------------------------------
# lists written once


def test_choice_lists_are_derived_from_the_dataclasses():
    import typing

    from mats.config import SantaConfig, SigmaRule, TrainConfig
    from mats.noise import SIGMA_RULES
    from mats.santa import MODES
    from mats.schedule import Decay

    assert MODES == choices(SantaConfig, "mode") == ("full", "no_kmeans", "noise_only", "memory_only")
    assert SIGMA_RULES == typing.get_args(SigmaRule)
    assert choices(TrainConfig, "schedule") == typing.get_args(Decay)
