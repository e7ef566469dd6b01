"""Model directories missing each part, or with each file corrupted: `mats caption --model DIR`
fails with one line naming the file and what is wrong with it (never a traceback, never a model
that loads and answers differently)."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import write_tone
from reliability import hostile
from reliability.hostile import Answer, Refusal
from safetensors.torch import load_file, save_file

GARBAGE = b"\x00\x01garbage\xff\xfe not what it should be"


def _missing(rel: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        target = d / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return edit


def _content(rel: str, data: bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / rel).unlink()  # a hard link to the trained model: replace it, never write through it
        (d / rel).write_bytes(data)

    return edit


def _truncated(rel: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        data = (d / rel).read_bytes()
        _content(rel, data[: len(data) // 2])(d)

    return edit


def _json_edit(rel: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        doc = json.loads((d / rel).read_text())
        _content(rel, json.dumps(change(doc)).encode())(d)

    return edit


def _tensors_edit(rel: str, change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        tensors = change(load_file(str(d / rel)))
        (d / rel).unlink()
        save_file(tensors, str(d / rel))

    return edit


def _first(tensors: dict, fn) -> dict:
    key = sorted(tensors)[0]
    return {**tensors, key: fn(tensors[key])}


def part(rel: str) -> tuple[str, str]:
    """What an error about part `rel` must hold: its folder's path ({d}: the model directory)
    and its own name (Hugging Face loaders report the folder; ours the file itself)."""
    folder, name = os.path.split(rel)
    return (f"{{d}}/{folder}".rstrip("/"), name)


def _set(doc: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    node[last] = value
    return doc


PARTS = [
    "config.json",
    "model.safetensors",
    "santa.safetensors",
    "encoder",
    "encoder/model.safetensors",
    "encoder/config.json",
    "encoder/tokenizer.json",
    "encoder/preprocessor_config.json",
    "lm",
    "lm/model.safetensors",
    "lm/config.json",
    "lm/tokenizer.json",
]
FILES = [p for p in PARTS if "." in p.rsplit("/", 1)[-1]]

# what the error must say of a missing part
MISSING = {
    "config.json": "needs config.json",
    "model.safetensors": "needs config.json and model.safetensors",
    "santa.safetensors": "missing",
    "encoder": "not found",
    "encoder/model.safetensors": "no file named model.safetensors",
    "encoder/config.json": "no config.json",
    "encoder/tokenizer.json": "no tokenizer files",
    "encoder/preprocessor_config.json": "no preprocessor_config.json",
    "lm": "not found",
    "lm/model.safetensors": "no file named model.safetensors",
    "lm/config.json": "model_type",
    "lm/tokenizer.json": "tokenizer.json",
}


def unreadable(rel: str) -> str:
    """What the error must say of a part that is there but garbled (mats.files words it)."""
    return "not a readable safetensors file" if rel.endswith(".safetensors") else "not valid JSON"


CASES = [
    *((f"missing_{p}", _missing(p), Refusal(part(p), MISSING[p])) for p in PARTS),
    *((f"garbage_{p}", _content(p, GARBAGE), Refusal(part(p), unreadable(p))) for p in FILES),
    *((f"empty_{p}", _content(p, b""), Refusal(part(p), unreadable(p))) for p in FILES),
    *((f"truncated_{p}", _truncated(p), Refusal(part(p), unreadable(p))) for p in FILES if p.endswith(".safetensors")),
    ("config_a_list", _content("config.json", b"[]"), Refusal(part("config.json"), "expected a JSON object")),
    ("config_null", _content("config.json", b"null"), Refusal(part("config.json"), "expected a JSON object")),
    (
        "config_section_a_number",
        _json_edit("config.json", lambda c: {**c, "mapper": 5}),
        Refusal((*part("config.json"), "mapper"), "must be a mapping"),
    ),
    (
        "config_negative_size",
        _json_edit("config.json", lambda c: _set(c, "mapper.hidden_size", -1)),
        Refusal((*part("config.json"), "mapper.hidden_size"), ">= 1"),
    ),
    (
        "config_unknown_santa_mode",
        _json_edit("config.json", lambda c: _set(c, "santa.mode", "bogus")),
        Refusal((*part("config.json"), "santa.mode"), "must be one of"),
    ),
    (
        "config_max_new_tokens_0",
        _json_edit("config.json", lambda c: _set(c, "generation.max_new_tokens", 0)),
        Refusal((*part("config.json"), "generation.max_new_tokens"), ">= 1"),
    ),
    (
        "config_mapper_size_changed",  # the weights no longer fit the config
        _json_edit("config.json", lambda c: _set(c, "mapper.hidden_size", 32)),
        Refusal(part("model.safetensors"), "shape"),
    ),
    (
        "weights_a_tensor_reshaped",
        _tensors_edit("model.safetensors", lambda t: _first(t, lambda x: x.reshape(-1)[:-1].clone())),
        Refusal(part("model.safetensors"), "shape"),
    ),
    (
        "weights_a_tensor_missing",
        _tensors_edit("model.safetensors", lambda t: dict(sorted(t.items())[1:])),
        Refusal(part("model.safetensors"), "missing"),
    ),
    (
        "weights_an_extra_tensor",
        _tensors_edit("model.safetensors", lambda t: {**t, "stowaway.weight": torch.zeros(3)}),
        Refusal((*part("model.safetensors"), "stowaway.weight"), "unexpected"),
    ),
    (
        "weights_nan",
        _tensors_edit("model.safetensors", lambda t: _first(t, lambda x: torch.full_like(x, float("nan")))),
        Refusal(part("model.safetensors"), "finite"),
    ),
    (
        "weights_integer_dtype",
        _tensors_edit("model.safetensors", lambda t: _first(t, lambda x: x.to(torch.int32))),
        Refusal(part("model.safetensors"), "floating point"),
    ),
    (
        "memory_wrong_width",
        _tensors_edit(
            "santa.safetensors", lambda t: {k: v[..., :-1].clone() if v.ndim == 2 else v for k, v in t.items()}
        ),
        Refusal(part("santa.safetensors"), "dim"),
    ),
    (
        "lm_config_string_size",
        _json_edit("lm/config.json", lambda c: {**c, "n_embd": str(c["n_embd"])}),
        Refusal((*part("lm/config.json"), "n_embd"), "positive integer"),
    ),
    ("santa_texts_missing", _missing("santa.texts.json"), Answer()),  # only `mats serve` shows them
    ("lm_generation_config_missing", _missing("lm/generation_config.json"), Answer()),
]


@pytest.fixture()
def model_copy(tiny, tmp_path) -> Path:
    """The tiny model as hard links (cheap); each case replaces what it breaks."""
    d = tmp_path / "model"
    shutil.copytree(tiny, d, copy_function=os.link)
    return d


@pytest.mark.parametrize("case_id, edit, expect", CASES, ids=[c[0] for c in CASES])
def test_each_broken_model_directory(model_copy, tmp_path, case_id, edit, expect):
    edit(model_copy)
    wav = write_tone(tmp_path / "tone.wav", 440)
    if isinstance(expect, Refusal):
        expect = Refusal(tuple(n.replace("{d}", str(model_copy)) for n in expect.names), expect.cause)
    ran = hostile.run_cli("caption", wav, "--model", model_copy)
    hostile.judge(f"model:{case_id}", "model directories", ran, expect)
