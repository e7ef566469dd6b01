"""Hostile `mats train` configs: every field of the preset with a value of the wrong type, values
out of range, and files that are not YAML configs at all. Each is refused before training
starts, in one line naming the file and the key; the odd-but-valid ones (a BOM, CRLF, anchors,
`3e-4`) train."""

import typing
from pathlib import Path

import pytest
import yaml
from reliability import hostile
from reliability.hostile import Answer, Refusal

from mats.config import RunConfig, field_types


def wrong_value(hint) -> object:
    """A value of another type than `hint` admits, as YAML would carry it."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "bogus"
    if origin in (dict,):
        return 5
    if origin in (list,):
        return 5
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):  # X | None
        inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
        return wrong_value(inner)
    return {float: "fast", int: "many", bool: "maybe", str: {"a": 1}}[hint]


FIELDS = field_types(RunConfig)
TYPE_CASES = [(f"wrong_type_{key}", {key: wrong_value(hint)}, key) for key, hint in FIELDS.items()]
RANGE_CASES = [
    (f"range_{key}={value}", {key: value}, "num_heads" if key.endswith("num_heads") else key)
    for key, value in [
        ("train.lr", 0),
        ("train.lr", -1e-3),
        ("train.lr", float("nan")),
        ("train.lr", float("inf")),
        ("train.weight_decay", -0.1),
        ("train.warmup_steps", -5),
        ("train.max_steps", 0),
        ("train.batch_size", 0),
        ("train.micro_batch_size", 0),
        ("train.grad_clip", -1.0),
        ("train.log_every", 0),
        ("train.checkpoint_every", 0),
        ("train.probe_every", -1),
        ("train.keep_checkpoints", 0),
        ("train.length_groups", -1),
        ("train.num_threads", 0),
        ("train.task_weights", {"aqa": -1.0}),
        ("train.task_weights", {"aqa": float("nan")}),
        ("train.device", "tpu"),
        ("model.audio.clip_seconds", 0.0),
        ("model.audio.clip_seconds", float("inf")),
        ("model.audio.max_windows", 0),
        ("model.noise.sigma", -0.1),
        ("model.noise.sigma", float("nan")),
        ("model.santa.memory_size", 0),
        ("model.santa.k", 0),
        ("model.santa.top_l", 0),
        ("model.santa.tau", 0.0),
        ("model.santa.lam", 1.5),
        ("model.santa.lam", -0.1),
        ("model.santa.kmeans_iters", 0),
        ("model.mapper.num_heads", 5),  # does not divide hidden_size 64
        ("model.mapper.hidden_size", 0),
        ("model.mapper.dropout", 1.5),
        ("model.lm.max_answer_tokens", 0),
        ("model.lora.r", 0),
        ("model.lora.dropout", -0.5),
        ("model.generation.num_beams", 17),
        ("model.generation.max_new_tokens", 0),
        ("model.generation.batch_size", 0),
        ("data.max_records", -1),
    ]
]


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, name = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[name] = value
    return out


def _merge(base: dict, change: dict) -> dict:
    out = dict(base)
    for k, v in change.items():
        out[k] = (
            _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "task_weights" else v
        )
    return out


def _train(cfg: Path, tmp: Path) -> hostile.Ran:
    return hostile.run_cli("train", cfg, "--out", tmp / "run", limit=120)


@pytest.mark.parametrize("case_id, change, key", TYPE_CASES + RANGE_CASES, ids=[c[0] for c in TYPE_CASES + RANGE_CASES])
def test_each_bad_field(train_base, tmp_path, case_id, change, key):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(_merge(train_base, _nested(change))))
    hostile.judge(f"config:{case_id}", "configs", _train(cfg, tmp_path), Refusal((str(cfg), key), ""))


def _text(base: dict) -> str:
    return yaml.safe_dump(base)


def _sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} not once in the preset"  # else the case tests nothing
    return text.replace(old, new)


FILES = [
    ("missing_file", None, Refusal(("{cfg}",), "not found")),
    ("a_directory", "DIR", Refusal(("{cfg}",), "directory")),
    ("empty_file", b"", Refusal(("{cfg}",), "empty")),
    ("only_comments", b"# nothing here\n", Refusal(("{cfg}",), "empty")),
    ("yaml_syntax_error", b"train:\n  lr: [1, 2\n", Refusal(("{cfg}",), "not valid YAML")),
    ("tab_indentation", b"train:\n\tlr: 0.1\n", Refusal(("{cfg}",), "not valid YAML")),
    ("top_level_list", b"- train\n- model\n", Refusal(("{cfg}",), "mapping")),
    ("top_level_scalar", b"42\n", Refusal(("{cfg}",), "mapping")),
    (
        "unknown_section",
        lambda b: _text({**b, "optimizer": {"name": "adam"}}),
        Refusal(("{cfg}", "optimizer"), "unknown"),
    ),
    (
        "unknown_key",
        lambda b: _text(_merge(b, {"train": {"learning_rate": 0.1}})),
        Refusal(("{cfg}", "learning_rate"), "unknown"),
    ),
    ("capitalised_section", lambda b: _text({"Train": b.pop("train"), **b}), Refusal(("{cfg}", "Train"), "unknown")),
    ("duplicate_key", lambda b: _text(b) + "train:\n  lr: 5.0\n", Refusal(("{cfg}", "train"), "duplicate")),
    ("binary_file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", Refusal(("{cfg}",), "UTF-8")),
    ("utf16_file", lambda b: _text(b).encode("utf-16"), Refusal(("{cfg}",), "UTF-8")),
    ("python_tag", b"train: !!python/object/apply:os.system ['echo owned']\n", Refusal(("{cfg}",), "not valid YAML")),
    ("section_is_a_list", lambda b: _text({**b, "train": [1, 2]}), Refusal(("{cfg}", "train"), "mapping")),
    ("data_train_empty", lambda b: _text(_merge(b, {"data": {"train": []}})), Refusal(("data.train",), "empty")),
    (
        "data_train_unknown_kind",
        lambda b: _text(_merge(b, {"data": {"train": ["nope:x"]}})),
        Refusal(("nope",), "unknown kind"),
    ),
    (
        "data_train_missing_file",
        lambda b: _text(_merge(b, {"data": {"train": ["/no/such.jsonl"]}})),
        Refusal(("/no/such.jsonl",), "not found"),
    ),
    (
        "data_train_synthetic_x",
        lambda b: _text(_merge(b, {"data": {"train": ["synthetic:40x"]}})),
        Refusal(("synthetic:40x",), "whole number"),
    ),
    (
        "cache_dir_is_a_file",
        lambda b: _text(_merge(b, {"data": {"cache_dir": "{cfg}"}})),
        Refusal(("data.cache_dir", "{cfg}"), "not a directory"),
    ),
    # odd but valid: these train
    ("utf8_bom", lambda b: "\ufeff" + _text(b), Answer()),
    ("crlf_line_ends", lambda b: _text(b).replace("\n", "\r\n"), Answer()),
    ("yaml_11_float_3e-4", lambda b: _sub(_text(b), "lr: 0.006", "lr: 3e-4"), Answer()),
    (
        "anchors_and_aliases",
        lambda b: _sub(_sub(_text(b), "log_every: 1", "log_every: &one 1"), "max_steps: 1", "max_steps: *one"),
        Answer(),
    ),
    ("megabyte_comment", lambda b: "#" + "x" * 1_000_000 + "\n" + _text(b), Answer()),
]


def _write(cfg: Path, content, base: dict) -> None:
    if content is None:
        return
    if content == "DIR":
        cfg.mkdir()
        return
    if callable(content):
        content = content(dict(base))
    if isinstance(content, str):
        content = content.replace("{cfg}", str(cfg)).encode()
    cfg.write_bytes(content)


@pytest.mark.parametrize("case_id, content, expect", FILES, ids=[c[0] for c in FILES])
def test_each_bad_config_file(train_base, tmp_path, case_id, content, expect):
    cfg = tmp_path / "run.yaml"
    _write(cfg, content, train_base)
    if isinstance(expect, Refusal):
        expect = Refusal(tuple(n.replace("{cfg}", str(cfg)) for n in expect.names), expect.cause)
    hostile.judge(f"config:{case_id}", "configs", _train(cfg, tmp_path), expect)
