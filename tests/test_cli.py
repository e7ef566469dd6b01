"""The command line contract of DESIGN §3, run as a user would (a subprocess)."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT


def mats(*args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "mats", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_four_verbs_print_the_documented_json(trained_tiny, wav_file):
    doc = json.loads(mats("ask", wav_file, "What is the sound event?", "--model", trained_tiny, "--json").stdout)
    assert set(doc) == {"audio", "question", "answer"} and isinstance(doc["answer"], str)

    docs = json.loads(mats("caption", wav_file, wav_file, "--model", trained_tiny, "--json").stdout)
    assert [set(d) for d in docs] == [{"audio", "caption"}] * 2 and docs[0] == docs[1]

    docs = json.loads(
        mats("classify", wav_file, "--labels", "dog,rain,piano", "--model", trained_tiny, "--json").stdout
    )
    assert set(docs[0]) == {"audio", "label", "scores"}
    assert docs[0]["label"] in {"dog", "rain", "piano"} and set(docs[0]["scores"]) == {"dog", "rain", "piano"}
    assert docs[0]["label"] == max(docs[0]["scores"], key=docs[0]["scores"].get)

    doc = json.loads(
        mats(
            "choose", wav_file, "What is heard?", "--choices", "a dog|rain|a piano", "--model", trained_tiny, "--json"
        ).stdout
    )
    assert set(doc) == {"audio", "question", "answer"} and doc["answer"] in {"a dog", "rain", "a piano"}


@pytest.mark.parametrize("content", [b"", b"this is not audio at all", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_a_corrupt_file_is_one_clear_line(trained_tiny, tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    r = mats("ask", bad, "What is it?", "--model", trained_tiny, check=False)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.wav" in lines[0] and "Traceback" not in r.stderr


def test_missing_file_and_missing_model(trained_tiny, tmp_path):
    r = mats("caption", tmp_path / "nope.wav", "--model", trained_tiny, check=False)
    assert r.returncode != 0 and "nope.wav" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = mats("caption", tmp_path / "nope.wav", "--model", tmp_path / "no-model", check=False)
    assert r.returncode != 0 and "no-model" in r.stderr and "Traceback" not in r.stderr


def test_train_with_a_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  learning_rate: 1\n")
    r = mats("train", cfg, "--out", tmp_path / "out", check=False)
    assert r.returncode != 0 and "learning_rate" in r.stderr and "Traceback" not in r.stderr


def test_train_takes_dotted_overrides_in_both_spellings(tmp_path):
    """--set KEY=VALUE and litgpt's --KEY VALUE / --KEY=VALUE set fields of the preset; the run's
    config.yaml records them. The overrides also shrink the tiny preset to a few seconds."""
    import yaml

    out = tmp_path / "run"
    mats(
        "train",
        "configs/tiny.yaml",
        "--out",
        out,
        "--max-steps",
        2,
        "--set",
        f"data.cache_dir={tmp_path / 'cache'}",
        "--set",
        "data.train=[synthetic:300]",
        "--model.santa.memory_size",
        200,
        "--train.lr=1e-3",
        "--train.log-every",
        1,
    )
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["log_every"] == 1
    assert cfg["model"]["santa"]["memory_size"] == 200 and cfg["data"]["train"] == ["synthetic:300"]
    assert (out / "final" / "config.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train.lr", "fast"], "train.lr must be a float, got 'fast'"),
        (["--set", "model.santa.mode=everything"], "model.santa.mode must be one of"),
        (["--max-step", "3"], "no such option --max-step (did you mean --max-steps?)"),
        (["--lr", "3"], "unknown key lr (did you mean train.lr?)"),
        (["--train.lr"], "needs a value"),
    ],
)
def test_train_rejects_bad_overrides_in_one_line(tmp_path, args, message):
    r = mats("train", "configs/tiny.yaml", "--out", tmp_path / "out", *args, check=False)
    assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_train_help_says_how_to_override_and_lists_the_fields():
    import dataclasses

    from mats.config import TrainConfig

    text = " ".join(mats("train", "--help").stdout.split())  # whatever the terminal's width
    assert "--set" in text and "--train.lr 3e-4" in text
    assert all(f.name in text for f in dataclasses.fields(TrainConfig))


def test_sigma_estimates_from_pairs_with_each_rule(trained_tiny, tmp_path):
    from conftest import write_tone

    from mats.data.records import write_jsonl

    pairs = [
        {"audio": str(write_tone(tmp_path / f"{f}.wav", f)), "caption": f"a tone at {f} hertz"} for f in (220, 440, 880)
    ]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    values = {
        rule: float(mats("sigma", tmp_path / "pairs.jsonl", "--model", trained_tiny, "--rule", rule).stdout)
        for rule in ("mean_linf", "mean_linf_squared", "gap_energy")
    }
    assert all(v > 0 for v in values.values())
    # ||d||^2 / D <= ||d||_inf^2 for every pair, so the gap energy never exceeds the squared rule.
    assert values["gap_energy"] <= values["mean_linf_squared"]
    bad = mats("sigma", tmp_path / "pairs.jsonl", "--model", trained_tiny, "--rule", "max", check=False)
    assert bad.returncode == 2 and "gap_energy" in bad.stderr


def test_embed_fills_the_cache_that_train_reads_and_a_second_run_adds_nothing(tmp_path):
    import numpy as np

    cache = tmp_path / "cache"
    args = ("embed", "configs/tiny.yaml", "--set", "data.train=[synthetic:60]", "--set", f"data.cache_dir={cache}")
    assert "60 training records" in mats(*args).stdout
    shards = sorted(cache.glob("*/*.keys.npy"))
    assert len(shards) == 1 and 0 < len(np.load(shards[0])) <= 60
    mats(*args)
    assert sorted(cache.glob("*/*.keys.npy")) == shards


def test_every_command_that_runs_a_model_takes_a_device():
    from typer.testing import CliRunner

    from mats.cli import app

    for command in ("ask", "caption", "classify", "choose", "eval", "serve", "sigma", "train"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--device" in result.output, command


def test_a_bad_or_absent_device_is_one_line_before_any_work(trained_tiny, wav_file, tmp_path):
    docs = json.loads(mats("caption", wav_file, "--model", trained_tiny, "--device", "cpu", "--json").stdout)
    assert isinstance(docs[0]["caption"], str)
    for args, message in (
        (["ask", wav_file, "What is it?", "--model", trained_tiny, "--device", "gpu"], "unknown device 'gpu'"),
        (["caption", wav_file, "--model", tmp_path / "no-model", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "configs/tiny.yaml", "--out", tmp_path / "out", "--device", "gpu"], "train.device must be one of"),
    ):
        r = mats(*args, check=False)
        assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()
    import torch

    if not torch.cuda.is_available():
        r = mats("caption", wav_file, "--model", trained_tiny, "--device", "cuda", check=False)
        assert r.returncode != 0 and "CUDA is not available" in r.stderr
