"""Hostile command lines for every verb: empty, huge and malformed questions, labels and choices,
beam widths out of range, unknown options, models and commands. Each row is a `mats` command
(`{wav}`: a good 1-s tone, `{model}`: the tiny model, `{tmp}`: the test's folder) and what it
must give."""

import json

import pytest
from conftest import write_tone
from reliability import hostile
from reliability.hostile import Answer, Refusal


def _json_answer(key: str, allowed=None, n: int | None = None):
    """A JSON answer whose `key` is a string (in `allowed` when given); n: a batch of n docs."""

    def check(ran: hostile.Ran) -> None:
        doc = json.loads(ran.out)
        docs = doc if isinstance(doc, list) else [doc]
        assert n is None or len(docs) == n, f"{len(docs)} results for {n} items"
        for d in docs:
            assert isinstance(d.get(key), str) and "error" not in d, d
            assert allowed is None or d[key] in allowed, f"{d[key]!r} not in {allowed}"

    return Answer(check)


def _good_line_kept(ran: hostile.Ran) -> None:
    assert len(ran.out.splitlines()) == 1 and "\t" in ran.out, ran.out


BEAMS = "whole number from 1"
NOT_INT = "valid integer"
LABELS = "at least two"
USAGE = 2  # click's exit code for a usage error

CASES = [
    # ask
    ("ask_ok", ["ask", "{wav}", "What is it?", "--json"], _json_answer("answer")),
    ("ask_empty_question", ["ask", "{wav}", ""], Refusal(("question",), "empty")),
    ("ask_blank_question", ["ask", "{wav}", " \n\t "], Refusal(("question",), "empty")),
    ("ask_10k_char_question", ["ask", "{wav}", "why " * 2500, "--json"], _json_answer("answer")),
    ("ask_multiline_question", ["ask", "{wav}", "what\nis\nit?", "--json"], _json_answer("answer")),
    ("ask_unicode_question", ["ask", "{wav}", "これは何の音？ 🎵", "--json"], _json_answer("answer")),
    (
        "ask_question_like_an_option",
        ["ask", "--json", "--model", "{model}", "--", "{wav}", "--what?"],
        _json_answer("answer"),
    ),
    ("ask_missing_question", ["ask", "{wav}"], Refusal(("question",), "Missing argument", USAGE)),
    ("ask_no_arguments", ["ask"], Refusal(("audio",), "Missing argument", USAGE)),
    ("ask_beams_0", ["ask", "{wav}", "q?", "--beams", "0"], Refusal(("--beams",), BEAMS)),
    ("ask_beams_negative", ["ask", "{wav}", "q?", "--beams", "-1"], Refusal(("--beams",), BEAMS)),
    ("ask_beams_17", ["ask", "{wav}", "q?", "--beams", "17"], Refusal(("--beams",), BEAMS)),
    ("ask_beams_1000", ["ask", "{wav}", "q?", "--beams", "1000"], Refusal(("--beams",), BEAMS)),
    ("ask_beams_1e30", ["ask", "{wav}", "q?", "--beams", str(10**30)], Refusal(("--beams",), BEAMS)),
    ("ask_beams_text", ["ask", "{wav}", "q?", "--beams", "abc"], Refusal(("--beams",), NOT_INT, USAGE)),
    ("ask_beams_fraction", ["ask", "{wav}", "q?", "--beams", "2.5"], Refusal(("--beams",), NOT_INT, USAGE)),
    ("ask_beams_empty", ["ask", "{wav}", "q?", "--beams", ""], Refusal(("--beams",), NOT_INT, USAGE)),
    ("ask_beams_16", ["ask", "{wav}", "q?", "--beams", "16", "--json"], _json_answer("answer")),
    ("ask_missing_audio", ["ask", "{tmp}/none.wav", "q?"], Refusal(("none.wav",), "not found")),
    ("ask_audio_is_a_folder", ["ask", "{tmp}", "q?"], Refusal(("{tmp}",), "directory")),
    ("ask_unknown_option", ["ask", "{wav}", "q?", "--temperature", "0.5"], Refusal(("--temperature",), "No such", 2)),
    (
        "ask_max_new_tokens_option",
        ["ask", "{wav}", "q?", "--max-new-tokens", "5"],
        Refusal(("--max-new",), "No such", 2),
    ),
    ("ask_bad_device", ["ask", "{wav}", "q?", "--device", "tpu"], Refusal(("tpu",), "cpu")),
    ("ask_absent_gpu", ["ask", "{wav}", "q?", "--device", "cuda:7"], Refusal(("cuda",), "CUDA")),
    # caption
    ("caption_no_audio", ["caption"], Refusal(("audio",), "Missing argument", USAGE)),
    ("caption_beams_0", ["caption", "{wav}", "--beams", "0"], Refusal(("--beams",), BEAMS)),
    ("caption_beams_17", ["caption", "{wav}", "--beams", "17"], Refusal(("--beams",), BEAMS)),
    ("caption_beams_16", ["caption", "{wav}", "--beams", "16", "--json"], _json_answer("caption", n=1)),
    ("caption_same_file_twice", ["caption", "{wav}", "{wav}", "--json"], _json_answer("caption", n=2)),
    ("caption_40_items", ["caption", *["{wav}"] * 40, "--json"], _json_answer("caption", n=40)),
    (
        "caption_batch_with_a_missing_file",
        ["caption", "{wav}", "{tmp}/gone.wav"],
        Refusal(("gone.wav",), "not found", check=_good_line_kept),
    ),
    ("caption_dev_zero", ["caption", "/dev/zero"], Refusal(("/dev/zero",), "not a regular file")),
    ("caption_dash_for_stdin", ["caption", "--model", "{model}", "--", "-"], Refusal(("-",), "not found")),
    # classify
    ("classify_ok", ["classify", "{wav}", "--labels", "dog,rain", "--json"], _json_answer("label", {"dog", "rain"})),
    ("classify_labels_empty", ["classify", "{wav}", "--labels", ""], Refusal(("--labels",), LABELS)),
    ("classify_labels_comma", ["classify", "{wav}", "--labels", ","], Refusal(("--labels",), LABELS)),
    ("classify_labels_blank", ["classify", "{wav}", "--labels", " , ,"], Refusal(("--labels",), LABELS)),
    ("classify_one_label", ["classify", "{wav}", "--labels", "dog"], Refusal(("--labels",), LABELS)),
    (
        "classify_duplicates",
        ["classify", "{wav}", "--labels", "dog,rain,dog"],
        Refusal(("--labels", "dog"), "distinct"),
    ),
    ("classify_duplicates_spaced", ["classify", "{wav}", "--labels", "dog, dog"], Refusal(("--labels",), "distinct")),
    (
        "classify_empty_among_labels",
        ["classify", "{wav}", "--labels", "dog,,rain,", "--json"],
        _json_answer("label", {"dog", "rain"}),
    ),
    (
        "classify_case_differs",
        ["classify", "{wav}", "--labels", "dog,Dog", "--json"],
        _json_answer("label", {"dog", "Dog"}),
    ),
    (
        "classify_500_labels",
        ["classify", "{wav}", "--labels", ",".join(f"label {i}" for i in range(500)), "--json"],
        _json_answer("label", {f"label {i}" for i in range(500)}),
    ),
    (
        "classify_unicode_labels",
        ["classify", "{wav}", "--labels", "狗,雨,🎵", "--json"],
        _json_answer("label", {"狗", "雨", "🎵"}),
    ),
    (
        "classify_10k_char_label",
        ["classify", "{wav}", "--labels", "x" * 10000 + ",dog", "--json"],
        _json_answer("label"),
    ),
    ("classify_missing_labels", ["classify", "{wav}"], Refusal(("--labels",), "Missing option", USAGE)),
    (
        "classify_batch_with_a_folder",
        ["classify", "{wav}", "{tmp}", "--labels", "dog,rain"],
        Refusal(("{tmp}",), "directory", check=_good_line_kept),
    ),
    # choose
    (
        "choose_ok",
        ["choose", "{wav}", "Which?", "--choices", "a dog|rain", "--json"],
        _json_answer("answer", {"a dog", "rain"}),
    ),
    ("choose_choices_empty", ["choose", "{wav}", "q?", "--choices", ""], Refusal(("--choices",), "at least two")),
    ("choose_one_choice", ["choose", "{wav}", "q?", "--choices", "a"], Refusal(("--choices",), "at least two")),
    (
        "choose_commas_not_bars",
        ["choose", "{wav}", "q?", "--choices", "a,b"],
        Refusal(("--choices", "a|b"), "at least two"),
    ),
    ("choose_duplicates", ["choose", "{wav}", "q?", "--choices", "a|a"], Refusal(("--choices",), "distinct")),
    (
        "choose_empty_among",
        ["choose", "{wav}", "q?", "--choices", "a||b", "--json"],
        _json_answer("answer", {"a", "b"}),
    ),
    ("choose_empty_question", ["choose", "{wav}", "", "--choices", "a|b"], Refusal(("question",), "empty")),
    (
        "choose_100_choices",
        ["choose", "{wav}", "q?", "--choices", "|".join(f"c{i}" for i in range(100)), "--json"],
        _json_answer("answer", {f"c{i}" for i in range(100)}),
    ),
    ("choose_missing_choices", ["choose", "{wav}", "q?"], Refusal(("--choices",), "Missing option", USAGE)),
    # models
    ("model_unknown_name", ["caption", "{wav}", "--model", "no-such-model"], Refusal(("no-such-model",), "not found")),
    ("model_empty_name", ["caption", "{wav}", "--model", ""], Refusal(("--model",), "empty")),
    ("model_is_a_file", ["caption", "{wav}", "--model", "{wav}"], Refusal(("{wav}",), "not a directory")),
    (
        "model_empty_folder",
        ["caption", "{wav}", "--model", "{tmp}/empty"],
        Refusal(("{tmp}/empty",), "not a MATS model directory"),
    ),
    # eval, sigma, serve, plan, data, report, the command itself
    (
        "eval_unknown_bench",
        ["eval", "--bench", "no-such-bench", "--model", "{model}"],
        Refusal(("no-such-bench",), "unknown benchmark"),
    ),
    (
        "eval_missing_bench_file",
        ["eval", "--bench", "{tmp}/b.jsonl", "--model", "{model}"],
        Refusal(("b.jsonl",), "not an existing JSONL file"),
    ),
    (
        "eval_limit_0",
        ["eval", "--bench", "{tmp}/bench.jsonl", "--limit", "0", "--model", "{model}"],
        Refusal(("--limit",), ">= 1"),
    ),
    (
        "eval_limit_negative",
        ["eval", "--bench", "{tmp}/bench.jsonl", "--limit", "-3", "--model", "{model}"],
        Refusal(("--limit",), ">= 1"),
    ),
    (
        "eval_santa_no_equals",
        ["eval", "--bench", "{tmp}/bench.jsonl", "--santa", "lam", "--model", "{model}"],
        Refusal(("lam",), "KEY=VALUE"),
    ),
    (
        "eval_santa_lam_2",
        ["eval", "--bench", "{tmp}/bench.jsonl", "--santa", "lam=2", "--model", "{model}"],
        Refusal(("lam",), "[0, 1]"),
    ),
    (
        "eval_santa_unknown",
        ["eval", "--bench", "{tmp}/bench.jsonl", "--santa", "beta=1", "--model", "{model}"],
        Refusal(("beta",), "unknown override"),
    ),
    (
        "eval_empty_question",  # refused when the file is read, naming its line, not midway
        ["eval", "--bench", "{tmp}/aqa.jsonl", "--model", "{model}"],
        Refusal(("aqa.jsonl:2",), "empty question"),
    ),
    ("eval_ok", ["eval", "--bench", "{tmp}/bench.jsonl", "--model", "{model}", "--json"], Answer()),
    (
        "sigma_missing_pairs",
        ["sigma", "{tmp}/pairs.jsonl", "--model", "{model}"],
        Refusal(("pairs.jsonl",), "not found"),
    ),
    (
        "sigma_n_0",
        ["sigma", "{tmp}/good_pairs.jsonl", "--n", "0", "--model", "{model}"],
        Refusal(("--n",), "at least 2"),
    ),
    ("sigma_empty_pairs", ["sigma", "{tmp}/empty.jsonl", "--model", "{model}"], Refusal(("empty.jsonl",), "0 pair(s)")),
    ("serve_port_0", ["serve", "--port", "0", "--model", "{model}"], Refusal(("port",), "> 0")),
    ("serve_port_70000", ["serve", "--port", "70000", "--model", "{model}"], Refusal(("port",), "1..65535")),
    ("serve_batch_size_0", ["serve", "--batch-size", "0", "--model", "{model}"], Refusal(("batch_size",), "> 0")),
    ("serve_gather_negative", ["serve", "--gather-ms", "-1", "--model", "{model}"], Refusal(("gather_ms",), ">= 0")),
    ("serve_timeout_0", ["serve", "--timeout", "0", "--model", "{model}"], Refusal(("timeout",), "> 0")),
    ("plan_missing_config", ["plan", "{tmp}/none.yaml"], Refusal(("none.yaml",), "not found")),
    ("plan_gpus_0", ["plan", "configs/tiny.yaml", "--gpus", "0"], Refusal(("--gpus",), "at least 1")),
    ("plan_mfu_2", ["plan", "configs/tiny.yaml", "--mfu", "2"], Refusal(("--mfu",), "(0, 1]")),
    (
        "plan_attention_bogus",
        ["plan", "configs/tiny.yaml", "--attention", "bogus"],
        Refusal(("--attention", "bogus"), "fused or math"),
    ),
    (
        "data_build_unknown_profile",
        ["data", "build", "--profile", "nope", "--out", "{tmp}/sw"],
        Refusal(("nope",), "unknown profile"),
    ),
    ("report_missing_spec", ["report", "{tmp}/spec.yaml"], Refusal(("spec.yaml",), "not found")),
    ("unknown_command", ["frobnicate"], Refusal(("frobnicate",), "No such command", USAGE)),
    ("unknown_global_option", ["--version"], Refusal(("--version",), "No such option", USAGE)),
]


@pytest.fixture()
def places(tmp_path, tiny) -> dict[str, str]:
    wav = write_tone(tmp_path / "tone.wav", 440)
    (tmp_path / "empty").mkdir()
    bench = {"audio": str(wav), "task": "classification", "label": "dog", "labels": ["dog", "rain"]}
    (tmp_path / "bench.jsonl").write_text(json.dumps(bench) + "\n")
    aqa = [{"audio": str(wav), "task": "aqa", "question": q, "answer": "yes"} for q in ("Is it loud?", "  ")]
    (tmp_path / "aqa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in aqa))
    pair = {"audio": str(wav), "caption": "a tone"}
    (tmp_path / "good_pairs.jsonl").write_text(json.dumps(pair) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    return {"wav": str(wav), "tmp": str(tmp_path), "model": str(tiny)}


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("case_id, args, expect", CASES, ids=[c[0] for c in CASES])
def test_each_command_line(places, case_id, args, expect):
    args = [_fill(a, places) for a in args]
    if args[0] in ("ask", "caption", "classify", "choose") and "--model" not in args:
        args += ["--model", places["model"]]
    if isinstance(expect, Refusal):
        expect = Refusal(
            tuple(_fill(n, places) for n in expect.names), expect.cause, expect.code, expect.lines, expect.check
        )
    hostile.judge(f"cli:{case_id}", "arguments", hostile.run_cli(*args), expect)
