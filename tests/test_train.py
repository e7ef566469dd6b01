import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, tiny_run_config
from safetensors.torch import load_file

from mats.config import to_dict
from mats.train import TrainError, batch_indices, length_grouped_batches, record_probabilities, train


def _weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


def _losses(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_batches_cover_each_epoch_once():
    n, b = 10, 4
    seen = [i for step in range(5) for i in batch_indices(n, step, b, seed=3)]  # 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert list(batch_indices(n, 1, b, seed=3)) == seen[4:8]


def test_task_weights_set_the_task_shares_of_the_batches():
    tasks = ["aqa"] * 60 + ["sound_caption"] * 20 + ["classification"] * 20
    p = record_probabilities(tasks, {"sound_caption": 4.0})  # captions: 80 of 160 weight units
    assert p.sum() == pytest.approx(1.0)
    drawn = np.concatenate([batch_indices(len(tasks), step, 32, seed=1, p=p) for step in range(300)])
    share = np.mean([tasks[i] == "sound_caption" for i in drawn])
    assert share == pytest.approx(0.5, abs=0.03)  # unweighted it would be 0.2
    # A function of (seed, step): a resumed run draws the same batches.
    assert list(batch_indices(len(tasks), 7, 32, seed=1, p=p)) == list(drawn[7 * 32 : 8 * 32])
    assert record_probabilities(tasks, {}) is None
    with pytest.raises(TrainError, match="music_caption"):
        record_probabilities(tasks, {"music_caption": 2.0})
    with pytest.raises(TrainError, match="negative"):
        record_probabilities(tasks, {"aqa": -1.0})


def test_length_groups_cut_the_same_rows_into_batches_of_similar_length():
    n, b, g = 50, 8, 4
    lengths = np.random.default_rng(0).integers(5, 60, size=n)  # (N,) row tokens
    batches = length_grouped_batches(n, 4, b, seed=2, lengths=lengths, groups=g)
    drawn = np.concatenate([batch_indices(n, s, b, seed=2) for s in range(4, 8)])
    assert sorted(np.concatenate(batches).tolist()) == sorted(drawn.tolist())  # the same rows
    # Neighbouring lengths: sorted by their shortest row, batch k ends where batch k + 1 begins.
    spans = sorted((int(lengths[x].min()), int(lengths[x].max())) for x in batches)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
    padded = np.mean([lengths[x].max() for x in batches])
    ungrouped = np.mean([lengths[batch_indices(n, s, b, seed=2)].max() for s in range(4, 8)])
    assert padded < ungrouped
    again = length_grouped_batches(n, 4, b, seed=2, lengths=lengths, groups=g)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = length_grouped_batches(n, 4, b, seed=3, lengths=lengths, groups=g)
    assert not all(np.array_equal(x, y) for x, y in zip(batches, other))


def test_negative_length_groups_is_an_error(tmp_path):
    with pytest.raises(TrainError, match="length_groups"):
        train(tiny_run_config(tmp_path / "cache", max_steps=2, length_groups=-1), tmp_path / "run", progress=False)


def test_metrics_log_and_final_model(tmp_path):
    out = tmp_path / "run"
    final = train(tiny_run_config(tmp_path / "cache", max_steps=6), out, progress=False)
    rows = _losses(out)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all({"step", "loss", "lr", "samples_per_s"} <= set(r) for r in rows)
    assert (final / "config.json").is_file() and (final / "santa.safetensors").is_file()
    assert (out / "checkpoints").is_dir()
    with pytest.raises(TrainError, match="--resume"):
        train(tiny_run_config(tmp_path / "cache", max_steps=6), out, progress=False)


@pytest.mark.parametrize(
    "sampling",
    [{}, {"task_weights": {"sound_caption": 3.0}}, {"length_groups": 4}],
    ids=["epochs", "weighted", "length-groups"],
)
def test_resume_gives_identical_weights(tmp_path, sampling):
    # Stopping at step 5 splits a length group (steps 4-7) across the two runs.
    cfg = tiny_run_config(tmp_path / "cache", max_steps=10, **sampling)
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "split", max_steps=5, progress=False)
    assert sorted(p.name for p in (tmp_path / "split" / "checkpoints").iterdir())[-1] == "step_0000005"
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(tmp_path / "straight") == [
        {**r, "samples_per_s": s["samples_per_s"]}
        for r, s in zip(_losses(tmp_path / "split"), _losses(tmp_path / "straight"))
    ]


def test_loss_falls(tmp_path):
    cfg = tiny_run_config(tmp_path / "cache", max_steps=40, checkpoint_every=100)
    train(cfg, tmp_path / "run", progress=False)
    losses = [r["loss"] for r in _losses(tmp_path / "run")]
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5


def test_cache_means_no_text_encoding_in_steps(tmp_path, monkeypatch):
    cfg = tiny_run_config(tmp_path / "cache", max_steps=2)
    train(cfg, tmp_path / "a", progress=False)  # fills the cache
    calls = []
    from mats.encoders import hf_clap

    original = hf_clap.HFClapEncoder.embed_text
    monkeypatch.setattr(
        hf_clap.HFClapEncoder, "embed_text", lambda self, texts: calls.append(len(texts)) or original(self, texts)
    )
    train(cfg, tmp_path / "b", progress=False)
    assert calls == []  # every embedding came from the cache, memory included
    assert all(torch.equal(x, y) for x, y in zip(_weights(tmp_path / "a").values(), _weights(tmp_path / "b").values()))


def _probe_run(tmp_path, name, **train_kw):
    cfg = tiny_run_config(
        None, max_steps=60, probe_every=30, batch_size=8, micro_batch_size=8, lr=1e-2, checkpoint_every=100, **train_kw
    )
    cfg.data.train = ["synthetic:8"]  # 8 distinct texts: overfitting them needs the embeddings
    cfg.model.noise.sigma = 0.0
    train(cfg, tmp_path / name, progress=False)
    return [r for r in _losses(tmp_path / name) if "probe_loss" in r]


def test_probe_shows_the_model_uses_its_input(tmp_path, capsys):
    probes = _probe_run(tmp_path, "run")
    assert [r["step"] for r in probes] == [30, 60]
    last = probes[-1]
    assert last["probe_loss_shuffled"] > last["probe_loss"] + 0.1
    assert "barely uses its input" not in capsys.readouterr().err


def test_probe_flags_a_model_that_ignores_its_input(tmp_path, monkeypatch, capsys):
    from mats.encoders import hf_clap

    original = hf_clap.HFClapEncoder.embed_text
    # Every text gets the same embedding: no input can carry information.
    monkeypatch.setattr(
        hf_clap.HFClapEncoder,
        "embed_text",
        lambda self, texts: original(self, ["a sound"]).expand(len(texts), -1).clone(),
    )
    last = _probe_run(tmp_path, "run")[-1]
    assert last["probe_loss_shuffled"] == pytest.approx(last["probe_loss"], abs=1e-5)
    assert "barely uses its input" in capsys.readouterr().err


def test_torchrun_two_processes_follow_the_one_process_curve(tmp_path):
    # Same samples, same noise, same dropout masks (micro-batches of 4 on either layout): the
    # runs optimise the same objective and must agree to float precision, dropout included.
    cfg = tiny_run_config(tmp_path / "cache", max_steps=8, checkpoint_every=100)
    assert cfg.model.lora.dropout > 0 and cfg.train.micro_batch_size * 2 == cfg.train.batch_size
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = [sys.executable, "-m", "mats", "train", str(path), "--out", str(tmp_path / "one")]
    two = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "mats",
        "train",
        str(path),
        "--out",
        str(tmp_path / "two"),
    ]
    for cmd in (one, two):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
    a = [r["loss"] for r in _losses(tmp_path / "one")]
    b = [r["loss"] for r in _losses(tmp_path / "two")]
    assert len(a) == len(b) == 8
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 1e-3


def test_audio_supervised_twin_trains_on_cached_audio_embeddings(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    pairs = tmp_path / "pairs.jsonl"
    lines = []
    for i in range(8):
        t = np.arange(8000) / 16000
        sf.write(tmp_path / f"{i}.wav", (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 16000)
        lines.append(json.dumps({"audio": f"{i}.wav", "caption": f"a tone number {i} hums"}))
    pairs.write_text("\n".join(lines) + "\n")
    cfg = tiny_run_config(tmp_path / "cache", max_steps=3)
    cfg.data.train, cfg.data.audio_pairs = [], [str(pairs)]
    cfg.model.noise.sigma = 0.0
    cfg.model.santa.mode = "noise_only"
    final = train(cfg, tmp_path / "run", progress=False)
    assert not (final / "santa.safetensors").exists()  # noise_only needs no memory
    stores = list((tmp_path / "cache").glob("audio-*"))
    assert len(stores) == 1 and sum(len(np.load(p)) for p in stores[0].glob("*.keys.npy")) == 8
    # A second run takes every clip's embedding from the cache.
    from mats.encoders import hf_clap

    monkeypatch.setattr(hf_clap.HFClapEncoder, "embed_audio", lambda *a: pytest.fail("audio re-embedded"))
    train(cfg, tmp_path / "again", progress=False)


def test_bf16_autocast_trains(tmp_path):
    cfg = tiny_run_config(tmp_path / "cache", max_steps=30, checkpoint_every=100, precision="bf16")
    train(cfg, tmp_path / "run", progress=False)
    losses = [r["loss"] for r in _losses(tmp_path / "run")]
    assert all(map(lambda x: x == x, losses))  # no NaN
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_filling_the_cache_ahead_leaves_training_nothing_to_embed(tmp_path, monkeypatch):
    import mats.cache as cache
    from mats.train import fill_embedding_cache

    run = tiny_run_config(tmp_path / "cache", max_steps=2)
    n = fill_embedding_cache(run, progress=False)
    assert n == 400  # synthetic:400
    store = next((tmp_path / "cache").iterdir())
    assert sum(len(np.load(p)) for p in store.glob("*.keys.npy")) > 0

    def no_embedding(*a, **k):
        raise AssertionError("training embedded texts the cache should have held")

    monkeypatch.setattr(cache, "embed_texts", no_embedding)
    train(run, tmp_path / "run", progress=False)


def test_filling_without_a_cache_dir_is_an_error():
    from mats.train import fill_embedding_cache

    with pytest.raises(TrainError, match="cache_dir"):
        fill_embedding_cache(tiny_run_config(None), progress=False)


# ---- devices and precision (mats.devices; on the CPU here)


def test_bf16_and_fp16_train_close_to_fp32(tmp_path):
    losses = {}
    # name: (autocast precision, dtype the frozen LM and CLAP are held in)
    runs = {"fp32": ("fp32", "fp32"), "bf16": ("bf16", "fp32"), "fp16": ("fp16", "fp32"), "bf16-base": ("bf16", "bf16")}
    for name, (precision, held) in runs.items():
        cfg = tiny_run_config(tmp_path / "cache", max_steps=2, checkpoint_every=100, precision=precision)
        cfg.model.lm.dtype = cfg.model.encoder.dtype = held
        train(cfg, tmp_path / name, progress=False)
        losses[name] = [r["loss"] for r in _losses(tmp_path / name)]
    assert len(losses["fp32"]) == 2
    for name in ("bf16", "fp16", "bf16-base"):
        assert all(np.isfinite(losses[name]))
        assert losses[name] == pytest.approx(losses["fp32"], rel=0.02), name
    meta = torch.load(tmp_path / "fp16" / "checkpoints" / "step_0000002" / "optim.pt", weights_only=False)
    assert meta["scaler"]["scale"] > 0  # fp16's loss scale is checkpointed with the optimiser
    bf16 = torch.load(tmp_path / "bf16" / "checkpoints" / "step_0000002" / "optim.pt", weights_only=False)
    assert "scaler" not in bf16


def test_fp16_resume_gives_identical_weights(tmp_path):
    cfg = tiny_run_config(tmp_path / "cache", max_steps=4, checkpoint_every=100, precision="fp16")
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "split", max_steps=2, progress=False)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_trains_as_without(tmp_path):
    for checkpointing in (False, True):
        cfg = tiny_run_config(tmp_path / "cache", max_steps=2, checkpoint_every=100)
        cfg.train.gradient_checkpointing = checkpointing
        train(cfg, tmp_path / str(checkpointing), progress=False)
    assert [r["loss"] for r in _losses(tmp_path / "True")] == pytest.approx(
        [r["loss"] for r in _losses(tmp_path / "False")], rel=1e-5
    )
    a, b = _weights(tmp_path / "False"), _weights(tmp_path / "True")
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


def test_compiled_training_computes_what_eager_training_does(tmp_path):
    """train.compile_backend compiles the LM's layers and the mapper in place ("aot_eager": the
    graph capture of "inductor" without generating code, so this runs anywhere): the same losses,
    and a saved model with the same weight names."""
    from torch._dynamo.utils import counters

    counters.clear()
    for backend in (None, "aot_eager"):
        cfg = tiny_run_config(tmp_path / "cache", max_steps=2, checkpoint_every=100, compile_backend=backend)
        train(cfg, tmp_path / str(backend), progress=False)
    assert counters["stats"]["unique_graphs"] > 0  # something was compiled
    assert [r["loss"] for r in _losses(tmp_path / "aot_eager")] == pytest.approx(
        [r["loss"] for r in _losses(tmp_path / "None")], rel=1e-5
    )
    # the same names and shapes (Module.compile adds no prefix); not the same last bits: Adam's
    # first steps move a weight by about lr whatever its gradient's size, so a gradient that is
    # zero up to rounding may step either way
    a, b = _weights(tmp_path / "None"), _weights(tmp_path / "aot_eager")
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    bad = tiny_run_config(tmp_path / "cache", max_steps=1, compile_backend="no-such-backend")
    with pytest.raises(TrainError, match="'no-such-backend' is not a torch.compile backend"):
        train(bad, tmp_path / "bad", progress=False)


def test_relative_checkpoint_paths_load_from_any_directory(tmp_path, monkeypatch):
    """A preset naming its LM by a path relative to the working directory (as gpt2-laion.yaml
    does): the trained model's config.json names it absolutely, so it loads from elsewhere."""
    from mats.config import LMConfig
    from mats.data.synthetic import synthetic_records
    from mats.lm import build_lm
    from mats.model import MATS

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    corpus = [x for r in synthetic_records(100) for x in (r.text, r.instruction, r.answer)]
    lm, tok = build_lm(LMConfig(options={"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 300}), corpus=corpus)
    lm.save_pretrained(work / "checkpoints" / "lm")
    tok.save_pretrained(work / "checkpoints" / "lm")
    cfg = tiny_run_config(tmp_path / "cache", max_steps=2, checkpoint_every=100)
    cfg.model.lm = LMConfig(backend="hf", path="checkpoints/lm", max_answer_tokens=32)
    monkeypatch.chdir(work)
    final = train(cfg, "runs/rel", progress=False)
    monkeypatch.chdir(elsewhere)
    lm_path = json.loads((work / final / "config.json").read_text())["lm"]["path"]
    assert lm_path == str((work / "checkpoints" / "lm").resolve())
    assert yaml.safe_load((work / "runs" / "rel" / "config.yaml").read_text())["model"]["lm"]["path"] == lm_path
    model = MATS.from_pretrained(work / final)
    assert model.generate(torch.randn(1, model.encoder.dim), ["Describe the audio."], max_new_tokens=2)


def test_autocast_must_match_a_half_precision_base(tmp_path):
    cfg = tiny_run_config(tmp_path / "cache", max_steps=2, precision="fp16")
    cfg.model.lm.dtype = "bf16"
    with pytest.raises(TrainError, match="train.precision fp16 does not go with model.lm.dtype bf16"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
