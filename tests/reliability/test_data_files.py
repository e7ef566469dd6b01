"""Hostile training data: `mats train` with `data.train` set to a file that is binary, has a BOM,
CRLF line ends, blank lines, a 1-MB line, missing fields or wrong types (AudioTIA JSONL, the
official MATS JSON, the CSV importers). A bad file is refused in one line naming the file and
line; an odd-but-valid one trains."""

import json
from pathlib import Path

import pytest
import yaml
from reliability import hostile
from reliability.hostile import Answer, Refusal

GOOD = {"text": "a dog barks twice", "instruction": "What do you hear?", "answer": "a dog", "task": "sound_caption"}


def rows(n: int = 8, **change) -> list[dict]:
    return [{**GOOD, "text": f"{GOOD['text']} {i}", **change} for i in range(n)]


OFFICIAL = {
    "caption": "a dog barks",
    "instruction": "Describe the sound.",
    "output": "a dog barks",
    "task": "audio_caption",
}


def official(n: int = 8) -> list[dict]:
    return [{**OFFICIAL, "caption": f"{OFFICIAL['caption']} {i}"} for i in range(n)]


def jsonl(objs, sep: str = "\n") -> bytes:
    return (sep.join(json.dumps(o, ensure_ascii=False) for o in objs) + sep).encode()


def with_line(line: bytes, at: int = 3) -> bytes:
    """Eight good lines with `line` as line `at` (1-based)."""
    lines = jsonl(rows()).splitlines()
    return b"\n".join(lines[: at - 1] + [line] + lines[at - 1 :]) + b"\n"


TRAINED = Answer(lambda ran: None if "model saved to" in ran.out else pytest.fail(f"no model: {ran.out!r}"))
AUDIOCAPS = "audiocap_id,youtube_id,start_time,caption\n"

# (id, file name, its bytes, spec of data.train ({f}: the file), expectation; names: {f} = the file)
CASES = [
    ("binary_png", "d.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "{f}", Refusal(("{f}:1",), "not UTF-8")),
    ("utf16", "d.jsonl", jsonl(rows()).decode().encode("utf-16"), "{f}", Refusal(("{f}:1",), "not UTF-8")),
    (
        "latin1_line",
        "d.jsonl",
        with_line('{"text": "caf\xe9"}'.encode("latin-1")),
        "{f}",
        Refusal(("{f}:3",), "not UTF-8"),
    ),
    ("nul_bytes", "d.jsonl", with_line(b"\x00\x00\x00"), "{f}", Refusal(("{f}:3",), "not JSON")),
    ("utf8_bom", "d.jsonl", b"\xef\xbb\xbf" + jsonl(rows()), "{f}", TRAINED),
    ("crlf", "d.jsonl", jsonl(rows(), sep="\r\n"), "{f}", TRAINED),
    ("blank_lines", "d.jsonl", b"\n\n" + jsonl(rows(), sep="\n\n  \n") + b"\n\n", "{f}", TRAINED),
    ("no_final_newline", "d.jsonl", jsonl(rows())[:-1], "{f}", TRAINED),
    # a 1-MB line (the reader), and a 100-kB text (what is embedded; 1 MB takes 13 s in the CLAP tokenizer)
    ("one_megabyte_line", "d.jsonl", jsonl([*rows(), {**GOOD, "notes": "x" * 1_000_000}]), "{f}", TRAINED),
    ("hundred_kb_text", "d.jsonl", jsonl([*rows(), {**GOOD, "text": "loud " * 20_000}]), "{f}", TRAINED),
    ("extra_fields", "d.jsonl", jsonl(rows(id="x", source="y")), "{f}", TRAINED),
    ("duplicate_lines", "d.jsonl", jsonl(rows(1) * 8), "{f}", TRAINED),
    ("unicode_text", "d.jsonl", jsonl(rows(text="犬が二回吠える 🐕")), "{f}", TRAINED),
    (
        "missing_field",
        "d.jsonl",
        with_line(json.dumps({k: v for k, v in GOOD.items() if k != "answer"}).encode()),
        "{f}",
        Refusal(("{f}:3", "answer"), "non-empty string"),
    ),
    (
        "text_a_number",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "text": 5}).encode()),
        "{f}",
        Refusal(("{f}:3", "text"), "non-empty string"),
    ),
    (
        "answer_a_list",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "answer": ["a"]}).encode()),
        "{f}",
        Refusal(("{f}:3", "answer"), "non-empty string"),
    ),
    (
        "task_null",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "task": None}).encode()),
        "{f}",
        Refusal(("{f}:3", "task"), "non-empty string"),
    ),
    (
        "empty_instruction",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "instruction": "  "}).encode()),
        "{f}",
        Refusal(("{f}:3", "instruction"), "non-empty string"),
    ),
    (
        "unknown_task",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "task": "dance"}).encode()),
        "{f}",
        Refusal(("{f}:3", "dance"), "unknown task"),
    ),
    ("truncated_json", "d.jsonl", with_line(b'{"text": "a dog'), "{f}", Refusal(("{f}:3",), "not JSON")),
    (
        "trailing_garbage",
        "d.jsonl",
        with_line(json.dumps(GOOD).encode() + b" oops"),
        "{f}",
        Refusal(("{f}:3",), "not JSON"),
    ),
    ("a_list_line", "d.jsonl", with_line(b'["text", "a dog"]'), "{f}", Refusal(("{f}:3",), "JSON object")),
    ("deeply_nested", "d.jsonl", with_line(b"[" * 100_000 + b"]" * 100_000), "{f}", Refusal(("{f}:3",), "not JSON")),
    (
        "lone_surrogate",
        "d.jsonl",
        with_line(json.dumps({**GOOD, "text": "a \ud800 dog"}).encode()),
        "{f}",
        Refusal(("{f}:3", "text"), "not valid Unicode"),
    ),
    ("json_array_file", "d.jsonl", json.dumps(rows()).encode(), "{f}", Refusal(("{f}:1",), "JSON object")),
    ("empty_file", "d.jsonl", b"", "{f}", Refusal(("{f}",), "no records")),
    ("only_blank_lines", "d.jsonl", b"\n \n\t\n", "{f}", Refusal(("{f}",), "no records")),
    ("fewer_than_a_batch", "d.jsonl", jsonl(rows(2)), "{f}", Refusal(("data.train", "{f}"), "fewer than one batch")),
    ("a_directory", "DIR", b"", "{f}", Refusal(("{f}",), "not a regular file")),
    ("missing_file", "none.jsonl", None, "{f}", Refusal(("{f}",), "not found")),
    # the official MATS JSON (caption, instruction, output, task)
    ("mats_json_list", "d.json", json.dumps(official()).encode(), "{f}", TRAINED),
    ("mats_json_annotation", "d.json", json.dumps({"annotation": official()}).encode(), "{f}", TRAINED),
    ("mats_json_as_jsonl", "d.json", jsonl(official()), "mats:{f}", TRAINED),
    ("mats_json_not_json", "d.json", b"{not json", "{f}", Refusal(("{f}",), "not JSON")),
    (
        "mats_json_annotation_a_number",
        "d.json",
        b'{"annotation": 5}',
        "{f}",
        Refusal(("{f}", "annotation"), "found int"),
    ),
    ("mats_json_a_string", "d.json", b'"hello"', "{f}", Refusal(("{f}", "annotation"), "found str")),
    (
        "mats_json_item_not_an_object",
        "d.json",
        json.dumps([*official(2), 7]).encode(),
        "{f}",
        Refusal(("{f}: item 3",), "JSON object"),
    ),
    (
        "mats_json_caption_a_list",
        "d.json",
        json.dumps([*official(2), {**OFFICIAL, "caption": ["a dog"]}]).encode(),
        "{f}",
        Refusal(("{f}: item 3", "caption"), "must be a string"),
    ),
    (
        "mats_json_output_missing",
        "d.json",
        json.dumps([*official(2), {k: v for k, v in OFFICIAL.items() if k != "output"}]).encode(),
        "{f}",
        Refusal(("{f}: item 3", "answer"), "non-empty string"),
    ),
    (
        "mats_json_task_missing",
        "d.json",
        json.dumps([*official(2), {k: v for k, v in OFFICIAL.items() if k != "task"}]).encode(),
        "{f}",
        Refusal(("{f}",), "cannot map task"),
    ),
    ("mats_json_binary", "d.json", b"\xff\xfe\x00binary", "{f}", Refusal(("{f}",), "not UTF-8")),
    # the CSV importers
    (
        "audiocaps_good",
        "a.csv",
        (AUDIOCAPS + "".join(f"{i},yt{i},0,a dog barks {i}\n" for i in range(8))).encode(),
        "audiocaps:{f}",
        TRAINED,
    ),
    (
        "audiocaps_no_caption_column",
        "a.csv",
        b"audiocap_id,youtube_id\n1,x\n",
        "audiocaps:{f}",
        Refusal(("{f}", "caption"), ""),
    ),
    ("audiocaps_empty", "a.csv", b"", "audiocaps:{f}", Refusal(("{f}",), "")),
    ("audiocaps_binary", "a.csv", b"\x89PNG\r\n\x1a\n\x00\xff", "audiocaps:{f}", Refusal(("{f}",), "UTF-8")),
    (
        "audiocaps_blank_caption",
        "a.csv",
        (AUDIOCAPS + "1,yt,0,\n" * 8).encode(),
        "audiocaps:{f}",
        Refusal(("{f}",), ""),
    ),
    ("clotho_wrong_header", "c.csv", b"name,text\nx.wav,a dog\n", "clotho:{f}", Refusal(("{f}",), "")),
    ("musiccaps_wrong_header", "m.csv", b"ytid,text\nx,music\n", "musiccaps:{f}", Refusal(("{f}",), "")),
]


def _write(tmp: Path, name: str, content: bytes | None) -> Path:
    if name == "DIR":
        (tmp / "data_dir").mkdir()
        return tmp / "data_dir"
    path = tmp / name
    if content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case_id, name, content, spec, expect", CASES, ids=[c[0] for c in CASES])
def test_each_training_data_file(train_base, tmp_path, case_id, name, content, spec, expect):
    path = _write(tmp_path, name, content)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**train_base, "data": {**train_base["data"], "train": [spec.format(f=path)]}}))
    if isinstance(expect, Refusal):
        expect = Refusal(tuple(n.replace("{f}", str(path)) for n in expect.names), expect.cause)
    ran = hostile.run_cli("train", cfg, "--out", tmp_path / "run", limit=120)
    hostile.judge(f"data:{case_id}", "training data", ran, expect)
