"""Inference-time variants: overrides parsing, Santa variants against a direct computation of the
formula, K re-clustering, and the CLAP zero-shot baseline (checked against clap_train)."""

import copy

import numpy as np
import pytest
import torch
from conftest import write_tone

from mats import api
from mats.data.records import read_bench, write_jsonl
from mats.evaluate import ablations as A
from mats.evaluate.ablations import AblationError, apply_overrides, parse_overrides


@pytest.fixture(scope="module")
def pipe(trained_tiny):
    return api.load(trained_tiny)


def _z(pipe, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, pipe.model.memory.dim, generator=g)  # (B, D) raw "audio" embeddings


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _santa_direct(z, mem, lam, tau, top_l, use_clusters, mode="blend"):
    """The Santa formula written out with numpy, one row at a time."""
    entries = mem.entries.double().numpy()
    cents = mem.centroids.double().numpy()
    assign = mem.assign.numpy()
    out = []
    for a in _unit(z.double().numpy()):
        cand = np.arange(len(entries))
        if use_clusters:
            c = np.argmin(((cents - a) ** 2).sum(1))
            cand = cand[assign == c]
        d2 = ((entries[cand] - a) ** 2).sum(1)
        pick = cand[np.argsort(d2, kind="stable")[:top_l]]
        logits = entries[pick] @ a / tau
        w = np.exp(logits - logits.max())
        w /= w.sum()
        recalled = (w[:, None] * entries[pick]).sum(0)
        out.append(recalled if mode == "memory_only" else (1 - lam) * a + lam * recalled)
    return _unit(np.asarray(out))


# ------------------------------------------------------------------ overrides


def test_parse_and_print_overrides_round_trip():
    ov = parse_overrides(["mode=no_kmeans", "lam=0.5", "top_l=4", "k=16", "tau=0.05"])
    assert ov == {"k": 16, "lam": 0.5, "mode": "no_kmeans", "tau": 0.05, "top_l": 4}
    flags = A.overrides_flags(ov)
    assert flags == "--santa k=16 --santa lam=0.5 --santa mode=no_kmeans --santa tau=0.05 --santa top_l=4"
    assert parse_overrides(flags.replace("--santa ", "").split()) == ov
    assert A.overrides_flags({"zero_shot": "true"}) == "--zero-shot"
    assert A.normalize_overrides({"zero_shot": False}) == {}


@pytest.mark.parametrize(
    "items, message",
    [
        (["lam=2"], "lam"),
        (["mode=bogus"], "mode"),
        (["depth=3"], "unknown override"),
        (["top_l=0"], "top_l"),
        (["k=2.5"], "int"),
        (["tau=0"], "tau"),
        (["lam"], "KEY=VALUE"),
        (["lam=0.1", "lam=0.2"], "twice"),
        (["zero_shot=true", "lam=0.1"], "zero_shot"),
    ],
)
def test_bad_overrides_are_named(items, message):
    with pytest.raises(AblationError, match=message):
        parse_overrides(items)


def test_drop_defaults_keeps_only_changes(pipe):
    santa = pipe.model.cfg.santa
    assert A.drop_defaults({"mode": santa.mode, "lam": santa.lam}, santa) == {}
    assert A.drop_defaults({"mode": "memory_only", "lam": santa.lam}, santa) == {"mode": "memory_only"}


# ------------------------------------------------------------------ Santa variants


def test_no_overrides_is_the_pipeline_itself(pipe):
    assert apply_overrides(pipe, {}) is pipe


def test_variants_follow_the_formula_and_leave_the_model_alone(pipe):
    mem, santa = pipe.model.memory, pipe.model.cfg.santa
    before = copy.deepcopy(santa)
    z = _z(pipe)
    full = apply_overrides(pipe, {"lam": 0.6, "tau": 0.5, "top_l": 3})
    want = _santa_direct(z, mem, lam=0.6, tau=0.5, top_l=3, use_clusters=True)
    np.testing.assert_allclose(full.model.project_audio(z).double().numpy(), want, atol=1e-5)

    nok = apply_overrides(pipe, {"mode": "no_kmeans", "lam": 0.6})
    want = _santa_direct(z, mem, lam=0.6, tau=santa.tau, top_l=santa.top_l, use_clusters=False)
    np.testing.assert_allclose(nok.model.project_audio(z).double().numpy(), want, atol=1e-5)

    noise = apply_overrides(pipe, {"mode": "noise_only", "lam": 0.9})
    np.testing.assert_allclose(noise.model.project_audio(z).numpy(), _unit(z.numpy()), atol=1e-6)

    mem_a = apply_overrides(pipe, {"mode": "memory_only", "lam": 0.1}).model.project_audio(z)
    mem_b = apply_overrides(pipe, {"mode": "memory_only", "lam": 0.9}).model.project_audio(z)
    assert torch.equal(mem_a, mem_b)  # memory only ignores lambda
    want = _santa_direct(z, mem, lam=1.0, tau=santa.tau, top_l=santa.top_l, use_clusters=True, mode="memory_only")
    np.testing.assert_allclose(mem_a.double().numpy(), want, atol=1e-5)
    # The variants are different functions of z, and the original pipeline is unchanged.
    assert not torch.allclose(mem_a, noise.model.project_audio(z), atol=1e-3)
    assert pipe.model.cfg.santa == before and pipe.model.memory is mem
    assert full.model.mapper is pipe.model.mapper and full.model.lm is pipe.model.lm


def test_k_reclusters_the_same_entries(pipe):
    mem, santa = pipe.model.memory, pipe.model.cfg.santa
    entries_before = mem.entries.clone()
    same = A.recluster_memory(mem, santa.k, santa)
    # The stored clustering was made by the same code and seed: it is reproduced exactly.
    assert torch.equal(same.centroids, mem.centroids) and torch.equal(same.assign, mem.assign)
    variant = apply_overrides(pipe, {"k": 3})
    new = variant.model.memory
    assert new.entries is mem.entries and torch.equal(mem.entries, entries_before)  # not re-noised
    assert 1 <= new.num_clusters <= 3 and pipe.model.memory.num_clusters == mem.num_clusters
    d2 = ((new.entries[:, None, :] - new.centroids[None]) ** 2).sum(-1)  # (M, K)
    assert torch.equal(new.assign, d2.argmin(1))  # members belong to their nearest centre
    assert torch.bincount(new.assign).min() > 0
    z = _z(pipe, seed=3)
    want = _santa_direct(z, new, santa.lam, santa.tau, santa.top_l, use_clusters=True)
    np.testing.assert_allclose(variant.model.project_audio(z).double().numpy(), want, atol=1e-5)


def test_memory_modes_need_a_memory(pipe):
    bare = copy.copy(pipe.model)
    bare.memory = None
    no_mem = api.Pipeline(bare)
    with pytest.raises(AblationError, match="needs a memory"):
        apply_overrides(no_mem, {"mode": "memory_only"})
    assert apply_overrides(no_mem, {"mode": "noise_only"}).model.memory is None


# ------------------------------------------------------------------ CLAP zero-shot


def test_zero_shot_matches_clap_train_evaluation(pipe, tmp_path):
    from mats.evaluate.runner import evaluate
    from mats_lab.clap_train import MiniClapTrainConfig, evaluate_clap

    assert A.ZERO_SHOT_PROMPT == MiniClapTrainConfig().prompt  # the form mini-CLAP trains on
    labels = ["dog", "bell", "rain", "engine"]
    rows = []
    for i, freq in enumerate([220, 440, 880, 1760, 330, 660]):
        write_tone(tmp_path / f"{i}.wav", freq)
        rows.append({"audio": f"{i}.wav", "task": "classification", "label": labels[i % 4], "labels": labels})
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, rows)
    zs = apply_overrides(pipe, {"zero_shot": True})
    got = evaluate(zs, bench, progress=False)["metrics"]["classification"]["accuracy"]
    ref = evaluate_clap(pipe.encoder, read_bench(bench), pipe.model.cfg.audio)
    assert got == pytest.approx(ref["classification"]["accuracy"])
    # The label is the argmax of the cosine scores it reports, computed here directly.
    audio = str(tmp_path / "0.wav")
    out = zs.classify([audio], labels)[0]
    a = torch.nn.functional.normalize(pipe.embed_audio([audio]), dim=-1)[0]
    prompts = [A.ZERO_SHOT_PROMPT.format(label=x) for x in labels]
    t = torch.nn.functional.normalize(pipe.encoder.embed_text(prompts), dim=-1)
    assert out["label"] == labels[int((t @ a).argmax())]
    assert out["scores"]["dog"] == pytest.approx(float(t[0] @ a), abs=1e-5)
    assert zs.choose([audio], ["which?"], [["a bell", "a dog"]])[0] in ("a bell", "a dog")
    with pytest.raises(AblationError, match="cannot caption"):
        zs.caption([audio])
