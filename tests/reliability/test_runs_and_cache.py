"""Runs that meet each other and the embedding cache: a run directory in use, checkpoints in the
way or broken, and a cache that is torn, garbled or filled by two trainings at once. A training
either refuses in one line or gives exactly the weights of a run on a fresh cache."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT
from reliability import hostile
from reliability.hostile import Answer, Refusal

WEIGHTS = "final/model.safetensors"


def _config(tmp: Path, base: dict, cache: Path | None, **train) -> Path:
    cfg = tmp / "run.yaml"
    doc = {**base, "data": {**base["data"], "cache_dir": str(cache) if cache else None}}
    doc["train"] = {**doc["train"], **train}
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


@pytest.fixture(scope="module")
def reference(train_base, tmp_path_factory) -> tuple[Path, bytes]:
    """A filled cache and the weights a run on it gives (3 steps, a checkpoint at 2)."""
    tmp = tmp_path_factory.mktemp("cache_reference")
    ran = hostile.run_cli(
        "train", _config(tmp, train_base, tmp / "cache", max_steps=3, checkpoint_every=2), "--out", tmp / "run"
    )
    assert ran.code == 0, ran.err
    return tmp / "cache", (tmp / "run" / WEIGHTS).read_bytes()


def _same_weights(reference: bytes, out: Path):
    def check(ran: hostile.Ran) -> None:
        assert (out / WEIGHTS).read_bytes() == reference, "weights differ from the run on a fresh cache"

    return Answer(check)


def _store(cache: Path) -> Path:
    (store,) = [p for p in cache.iterdir() if p.is_dir()]
    return store


def _shard(cache: Path, suffix: str) -> Path:
    (path,) = _store(cache).glob("*" + suffix)
    return path


def _torn_rows(cache: Path) -> None:  # kill -9 while the rows were written: the file cut short
    path = _shard(cache, ".emb.npy")
    path.write_bytes(path.read_bytes()[:200])


def _garbled_keys(cache: Path) -> None:
    _shard(cache, ".keys.npy").write_bytes(b"\x93NUMPY garbage")


def _rows_without_keys(cache: Path) -> None:  # a shard whose keys (its commit) were never written
    _shard(cache, ".keys.npy").unlink()


def _nan_rows(cache: Path) -> None:
    path = _shard(cache, ".emb.npy")
    rows = np.load(path)
    np.save(path, np.full_like(rows, np.nan))


def _legacy_garbage(cache: Path) -> None:  # the old one-file layout, unreadable
    (_store(cache) / "index.json").write_text("{not json")
    (_store(cache) / "embeddings.npy").write_bytes(b"nope")


def _store_a_file(cache: Path) -> None:
    store = _store(cache)
    shutil.rmtree(store)
    store.write_text("not a directory")


CACHE_CASES = [
    ("cache_torn_rows", _torn_rows, None),
    ("cache_garbled_keys", _garbled_keys, None),
    ("cache_rows_without_keys", _rows_without_keys, None),
    ("cache_legacy_files_garbled", _legacy_garbage, None),
    ("cache_rows_nan", _nan_rows, ("not finite", "cache: a complete shard of NaN rows is used as is")),
    ("cache_store_is_a_file", _store_a_file, ("not a directory", "cache: the store path is a file")),
]


@pytest.mark.parametrize("case_id, spoil, error", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_a_spoiled_cache_is_recomputed_or_named(train_base, reference, tmp_path, case_id, spoil, error):
    cache, weights = reference
    shutil.copytree(cache, tmp_path / "cache")
    spoil(tmp_path / "cache")
    cfg = _config(tmp_path, train_base, tmp_path / "cache", max_steps=3, checkpoint_every=2)
    ran = hostile.run_cli("train", cfg, "--out", tmp_path / "run")
    expect = (
        _same_weights(weights, tmp_path / "run") if error is None else Refusal((str(_store(cache).name),), error[0])
    )
    hostile.judge(f"runs:{case_id}", "runs and cache", ran, expect)


def test_two_trainings_filling_one_cache_at_once(train_base, reference, tmp_path):
    """Both write shards side by side; each gets the weights of a run on a filled cache."""
    _, weights = reference
    cfg = _config(tmp_path, train_base, tmp_path / "shared", max_steps=3, checkpoint_every=2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mats", "train", str(cfg), "--out", str(tmp_path / name)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    ok = all(p.returncode == 0 for p in procs) and all((tmp_path / n / WEIGHTS).read_bytes() == weights for n in "ab")
    hostile.record(
        "runs:two trainings filling one cache at once",
        "runs and cache",
        "answered" if ok else ("traceback" if any("Traceback" in e for _, e in outs) else "silent wrong success"),
    )
    assert ok, [e[-800:] for _, e in outs]


@pytest.fixture(scope="module")
def finished_once(train_base, tmp_path_factory) -> Path:
    """The run directory of a finished 3-step run with checkpoints at 2 and 3 (trained once)."""
    tmp = tmp_path_factory.mktemp("finished")
    assert (
        hostile.run_cli(
            "train", _config(tmp, train_base, None, max_steps=3, checkpoint_every=2), "--out", tmp / "run"
        ).code
        == 0
    )
    return tmp / "run"


@pytest.fixture()
def finished(train_base, finished_once, tmp_path) -> tuple[Path, Path]:
    """(config, run directory): a copy of the finished run, for this test to break."""
    shutil.copytree(finished_once, tmp_path / "run")
    (tmp_path / "run" / ".lock").unlink(missing_ok=True)
    return _config(tmp_path, train_base, None, max_steps=3, checkpoint_every=2), tmp_path / "run"


def _latest(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step_*"))[-1]


def test_a_run_directory_in_use_is_refused(train_base, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mats.train import RunLock; import pathlib, sys, time\n"
            f"with RunLock(pathlib.Path({str(tmp_path / 'run')!r}), True):\n    print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        ran = hostile.run_cli("train", _config(tmp_path, train_base, None), "--out", tmp_path / "run")
    finally:
        holder.communicate("", timeout=60)
    expect = Refusal((str(tmp_path / "run"), f"pid {holder.pid}"), "another training is running")
    hostile.judge("runs:run directory in use", "runs and cache", ran, expect)


RUN_CASES = [
    ("out_holds_checkpoints", [], None, Refusal(("{run}",), "--resume")),
    ("resume_finished_run", ["--resume"], None, Answer()),
    (
        "resume_with_nothing",
        ["--resume", "--out", "{tmp}/empty"],
        None,
        Refusal(("--resume", "{tmp}/empty"), "no checkpoint"),
    ),
    ("out_is_a_file", ["--out", "{cfg}"], None, Refusal(("--out", "{cfg}"), "not a directory")),
    (
        "resume_truncated_weights",
        ["--resume"],
        ("trainable.safetensors", lambda b: b[: len(b) // 2]),
        Refusal(("trainable.safetensors",), "not a readable safetensors file"),
    ),
    (
        "resume_garbage_optimizer",
        ["--resume"],
        ("optim.pt", lambda b: b"garbage"),
        Refusal(("optim.pt",), "not readable"),
    ),
    ("resume_missing_rng", ["--resume"], ("rng_rank0.pt", None), Refusal(("rng_rank0.pt",), "No such file")),
]


@pytest.mark.parametrize("case_id, args, spoil, expect", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_each_run_directory_case(finished, tmp_path, case_id, args, spoil, expect):
    cfg, run = finished
    if spoil is not None:
        name, change = spoil
        path = _latest(run) / name
        path.unlink() if change is None else path.write_bytes(change(path.read_bytes()))
    fill = {"{run}": str(run), "{tmp}": str(tmp_path), "{cfg}": str(cfg)}

    def sub(text: str) -> str:
        for k, v in fill.items():
            text = text.replace(k, v)
        return text

    args = [sub(a) for a in args]
    if "--out" not in args:
        args += ["--out", str(run)]
    if isinstance(expect, Refusal):
        expect = Refusal(tuple(sub(n) for n in expect.names), expect.cause)
    hostile.judge(f"runs:{case_id}", "runs and cache", hostile.run_cli("train", cfg, *args), expect)
