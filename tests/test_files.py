"""mats.files: every reader's error names its file, in the caller's error type."""

import re

import pytest
import torch
from safetensors.torch import save_file

from mats.files import (
    check_safetensors,
    check_tokenizer_files,
    load_torch,
    naming,
    read_json,
    read_json_object,
    read_safetensors,
)

GARBAGE = b"\x00\x01garbage\xff\xfe"


class MyError(Exception):
    pass


def test_naming_turns_the_caught_types_into_the_callers_error(tmp_path):
    with pytest.raises(MyError, match=r"^f.txt: broken \(bad value\)$"):
        with naming("f.txt", MyError, "broken"):
            raise ValueError("bad\nvalue")
    with pytest.raises(MyError, match=r"^f.txt: missing x$"):
        with naming("f.txt", MyError, catch=(KeyError, MyError)):
            raise MyError("missing x")
    with pytest.raises(KeyError):  # not among the caught types: as it was
        with naming("f.txt", MyError):
            raise KeyError("k")


@pytest.mark.parametrize("content", [GARBAGE, b"", b"{not json", b'{"a": 1'])
def test_json_that_is_not_json(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(MyError, match=re.escape(f"{path}: not valid JSON (")):
        read_json(path, MyError)


def test_json_object(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"a": "é"}', encoding="utf-8")
    assert read_json_object(path, MyError) == {"a": "é"}
    path.write_text("[1]")
    assert read_json(path, MyError) == [1]
    with pytest.raises(MyError, match=re.escape(f"{path}: expected a JSON object")):
        read_json_object(path, MyError)
    with pytest.raises(FileNotFoundError, match="nope.json"):  # a missing file keeps its own error
        read_json(tmp_path / "nope.json", MyError)


@pytest.mark.parametrize("spoil", ["garbage", "empty", "cut"])
def test_safetensors_that_are_not_readable(tmp_path, spoil):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(64.0)}, str(path))
    assert torch.equal(read_safetensors(path, MyError)["w"], torch.arange(64.0))
    check_safetensors(tmp_path, MyError)
    data = path.read_bytes()
    path.write_bytes({"garbage": GARBAGE, "empty": b"", "cut": data[: len(data) // 2]}[spoil])
    for read in (read_safetensors, lambda p, e: check_safetensors(p.parent, e)):
        with pytest.raises(MyError, match=re.escape(f"{path}: not a readable safetensors file (")):
            read(path, MyError)


@pytest.mark.parametrize("content", [b"garbage", b"", GARBAGE])
def test_torch_files_that_are_not_readable(tmp_path, content):
    path = tmp_path / "optim.pt"
    torch.save({"step": 3}, path)
    assert load_torch(path, MyError) == {"step": 3}
    path.write_bytes(content)
    with pytest.raises(MyError, match=re.escape(f"{path}: not readable (")):
        load_torch(path, MyError)


def test_tokenizer_files(tmp_path):
    with pytest.raises(
        MyError, match=re.escape(f"{tmp_path}: LM directory has no tokenizer files (one of tokenizer.json")
    ):
        check_tokenizer_files(tmp_path, MyError, "LM directory")
    (tmp_path / "tokenizer.json").write_text("{}")
    check_tokenizer_files(tmp_path, MyError, "LM directory")
    (tmp_path / "tokenizer_config.json").write_bytes(GARBAGE)
    with pytest.raises(MyError, match=re.escape(f"{tmp_path / 'tokenizer_config.json'}: not valid JSON")):
        check_tokenizer_files(tmp_path, MyError, "LM directory")
