"""mini-CLAP training: split by recording, augmentation, loss, metrics, a tiny real run per audio
tower (the aisfx one with a width-2 network from tests/fixtures/aisfx)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import TINY_AISFX_WIDTH
from safetensors import safe_open

from mats.config import AudioConfig, EncoderConfig
from mats.encoders import EncoderError, aisfx_net, build_encoder
from mats.encoders.mini import WEIGHTS_FILE, MelConfig, MiniClap, MiniClapArch
from mats_lab.clap_train import (
    AugmentConfig,
    ClapTrainError,
    Clip,
    MiniClapTrainConfig,
    _ema_update,
    _label_caption,
    augment_mels,
    compute_mels,
    contrastive_loss,
    crop_batch,
    evaluate_clap,
    fill_views,
    label_loss,
    read_clips,
    retrieval_recall,
    shift_bins,
    split_by_recording,
    train_mini_clap,
    train_on_soundworld,
    zero_shot_accuracy,
)

SR = 16000
TINY = MiniClapArch(
    dim=16, stem_channels=[4, 8], width=24, blocks=2, mel=MelConfig(n_mels=32, n_fft=512, hop_length=160)
)
# (recording id, label, caption, how to make the wave)
KINDS = {
    "beep": ("a high beep", lambda t, r: 0.3 * np.sin(2 * np.pi * (1800 + 200 * r) * t)),
    "hum": ("a low hum", lambda t, r: 0.3 * np.sin(2 * np.pi * (110 + 20 * r) * t)),
    "hiss": ("static noise hissing", lambda t, r: 0.1 * np.random.default_rng(r).standard_normal(len(t))),
    "click": ("sharp clicks", lambda t, r: (np.arange(len(t)) % (1600 + 400 * r) < 40) * 0.5),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small SoundWorld-like folder: manifest + clap/{train,val}.jsonl of 1 s single-source clips,
    4 labels x 4 recordings, 2 clips per recording (different gains) with their captions."""
    root = tmp_path_factory.mktemp("world")
    (root / "clap" / "audio").mkdir(parents=True)
    t = np.arange(SR) / SR
    recordings, lines = [], []
    for label, (caption, make) in KINDS.items():
        for r in range(4):
            rec = f"{label}/{r}"
            recordings.append({"id": rec, "label": label, "split": "clap"})
            for g, gain in enumerate((1.0, 0.5)):
                name = f"audio/{label}{r}_{g}.wav"
                sf.write(root / "clap" / name, (gain * make(t, r)).astype(np.float32), SR)
                lines.append({"audio": name, "caption": caption, "sources": [rec]})
                lines.append({"audio": name, "caption": f"the sound of {caption}", "sources": [rec]})
    (root / "manifest.json").write_text(json.dumps({"recordings": recordings}))
    (root / "clap" / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:-4]))
    (root / "clap" / "val.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[-4:]))
    return root


def tiny_cfg(tmp: Path, **over) -> MiniClapTrainConfig:
    base = dict(
        arch=TINY,
        steps=30,
        batch_size=8,
        lr=3e-3,
        warmup_steps=5,
        crop_seconds=0.5,
        val_fraction=0.25,
        eval_every=10,
        cache_dir=str(tmp / "cache"),
        seed=0,
    )
    return MiniClapTrainConfig(**{**base, **over})


def pairs(world: Path) -> list[Path]:
    return [world / "clap" / "train.jsonl", world / "clap" / "val.jsonl"]


# ---- data


def test_read_clips_groups_captions(world):
    clips = read_clips(pairs(world))
    assert len(clips) == 32  # 4 labels x 4 recordings x 2 gains, across both files
    assert all(len(c.captions) == 2 and len(c.sources) == 1 for c in clips)
    assert all(Path(c.audio).is_absolute() and Path(c.audio).is_file() for c in clips)


def test_read_clips_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio": "x.wav"}\n')
    with pytest.raises(ClapTrainError, match="bad.jsonl:1"):
        read_clips([bad])
    with pytest.raises(ClapTrainError, match="file not found"):
        read_clips([tmp_path / "missing.jsonl"])


def test_split_by_recording_keeps_recordings_apart():
    clip = lambda *src: Clip("x", ["c"], src)  # noqa: E731
    clips = [clip("a1"), clip("a2"), clip("a3"), clip("a4"), clip("b1"), clip("a1", "b1"), clip("a2", "a3"), clip("c1")]
    labels = {"a1": "a", "a2": "a", "a3": "a", "a4": "a", "b1": "b", "c1": "c"}
    train, val, held = split_by_recording(clips, labels, fraction=0.5, max_per_label=2, seed=3)
    assert len(held) == 2 and set(held) <= {"a1", "a2", "a3", "a4"}  # b and c have one recording each
    for i in train:
        assert not set(clips[i].sources) & set(held)
    for i in val:
        assert set(clips[i].sources) <= set(held)
    assert sorted(train + val) == sorted(set(train + val))
    # the cap binds, and the same seed gives the same split
    assert len(split_by_recording(clips, labels, 1.0, 1, 3)[2]) == 1
    assert split_by_recording(clips, labels, 0.5, 2, 3) == (train, val, held)


def test_label_captions():
    labels = {"d1": "dog", "d2": "dog", "r1": "rain"}
    cfg = MiniClapTrainConfig(prompt="the sound of {label}")
    assert _label_caption(Clip("x", ["c"], ("d1", "r1", "d2")), labels, cfg) == ["the sound of dog and rain"]
    assert _label_caption(Clip("x", ["c"], ("d1", "unknown")), labels, cfg) == []
    assert _label_caption(Clip("x", ["c"], ("d1",)), labels, MiniClapTrainConfig(label_captions=False)) == []


def test_mels_are_cached(world, tmp_path):
    model = MiniClap(TINY)
    paths = [c.audio for c in read_clips(pairs(world))[:3]]
    first = compute_mels(paths, model, tmp_path, progress=False)
    assert len(list((tmp_path / "mels").rglob("*.npy"))) == 3
    again = compute_mels(paths, model, tmp_path, progress=False)
    direct = compute_mels(paths, model, None, progress=False)
    for a, b, c in zip(first, again, direct):
        assert a.dtype == torch.float16 and a.shape == (32, SR // 160 + 1)
        assert torch.equal(a, b) and torch.equal(a, c)


# ---- augmentation


def test_crop_batch_tiles_and_crops():
    g = torch.Generator().manual_seed(0)
    short = torch.arange(3.0).repeat(4, 1)  # (M=4, T=3)
    long = torch.arange(100.0).repeat(4, 1)  # (4, 100)
    x = crop_batch([short, long], frames=8, stretch=0.0, generator=g)
    assert x.shape == (2, 4, 8)
    assert torch.equal(x[0, 0], torch.tensor([0.0, 1, 2, 0, 1, 2, 0, 1]))  # tiled from the start
    start = x[1, 0, 0]
    assert torch.equal(x[1, 0], start + torch.arange(8.0))  # a contiguous window
    stretched = crop_batch([long] * 4, frames=8, stretch=0.5, generator=g)
    assert stretched.shape == (4, 4, 8)


def test_shift_bins():
    x = torch.arange(6.0)[None, :, None].repeat(2, 1, 3)  # (2, M=6, T=3), value = bin index
    out = shift_bins(x, torch.tensor([2.0, -0.5]))
    assert torch.equal(out[0, :, 0], torch.tensor([0.0, 0, 0, 1, 2, 3]))  # up 2 bins, edge repeated
    torch.testing.assert_close(out[1, :, 0], torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5, 5.0]))


def test_augment_gain_only_adds_a_constant_per_item():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 20)
    cfg = AugmentConfig(pitch_bins=0, eq_db=0, noise_prob=0, time_masks=0, freq_masks=0, gain_db=6.0)
    diff = augment_mels(x, cfg, g) - x
    assert torch.allclose(diff, diff[:, :1, :1].expand_as(diff), atol=1e-6)
    assert diff.abs().max() <= 6.0 * math.log(10) / 10 + 1e-6 and diff.abs().max() > 0


def test_augment_mixing_adds_a_quieter_other_clip():
    g = torch.Generator().manual_seed(0)
    quiet = torch.full((1, 8, 20), -10.0)
    loud = torch.full((1, 8, 20), 0.0)
    cfg = AugmentConfig(
        pitch_bins=0, gain_db=0, eq_db=0, noise_prob=0, time_masks=0, freq_masks=0, mix_prob=1.0, mix_db=(10.0, 10.0)
    )
    out = augment_mels(torch.cat([quiet, loud]), cfg, g)
    # each clip gets the other at exactly 10 dB below its own level: log(1 + 10^-1) more power
    torch.testing.assert_close(out, torch.cat([quiet, loud]) + math.log(1.1))


def test_augment_full_is_finite_and_seeded():
    x = torch.randn(4, 32, 50)
    a = augment_mels(x, AugmentConfig(noise_prob=1.0), torch.Generator().manual_seed(1))
    b = augment_mels(x, AugmentConfig(noise_prob=1.0), torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.isfinite(a).all() and torch.equal(a, b)
    assert (a >= x - 6.0 * 2 * math.log(10) / 10 - 1e-4).float().mean() > 0.5  # noise only adds power


# ---- loss and metrics


def test_contrastive_loss_matches_cross_entropy():
    torch.manual_seed(0)
    a, t = torch.randn(5, 8), torch.randn(5, 8)
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * F.normalize(a, dim=-1) @ F.normalize(t, dim=-1).T
    expected = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))) / 2
    torch.testing.assert_close(contrastive_loss(a, t, scale, torch.eye(5, dtype=torch.bool)), expected)
    # two items sharing a caption: each row's target is split over both
    pos = torch.eye(5, dtype=torch.bool)
    pos[0, 1] = pos[1, 0] = True
    target = pos.float() / pos.float().sum(1, keepdim=True)
    manual = -(target * logits.log_softmax(1)).sum(1).mean() / 2 - (target * logits.T.log_softmax(1)).sum(1).mean() / 2
    torch.testing.assert_close(contrastive_loss(a, t, scale, pos), manual)


def test_label_loss_by_hand_and_skips_unlabelled_clips():
    torch.manual_seed(0)
    a, prompts = torch.randn(3, 8), torch.randn(4, 8)
    scale = torch.tensor(math.log(10.0))
    targets = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]], dtype=torch.bool)  # clip 1: no label
    logits = 10.0 * F.normalize(a, dim=-1) @ F.normalize(prompts, dim=-1).T  # (3, 4)
    manual = (-logits[0].log_softmax(0)[0] - logits[2].log_softmax(0)[[1, 3]].mean()) / 2
    torch.testing.assert_close(label_loss(a, prompts, scale, targets), manual)
    # a clip on its own label's prompt scores lower than one on another label's
    aligned = label_loss(prompts[:2], prompts, scale, torch.eye(4, dtype=torch.bool)[:2])
    crossed = label_loss(prompts[:2].flip(0), prompts, scale, torch.eye(4, dtype=torch.bool)[:2])
    assert aligned < crossed
    assert label_loss(a, prompts, scale, torch.zeros(3, 4, dtype=torch.bool)).item() == 0.0


def test_ema_update_averages_parameters_and_buffers():
    a, b = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        a.weight.fill_(1.0), b.weight.fill_(3.0)
        a.running_mean.fill_(0.0), b.running_mean.fill_(10.0)
    b.num_batches_tracked.fill_(7)
    _ema_update(a, b, decay=0.75)
    torch.testing.assert_close(a.weight.data, torch.full((2,), 1.5))
    torch.testing.assert_close(a.running_mean, torch.full((2,), 2.5))
    assert int(a.num_batches_tracked) == 7


def test_zero_shot_accuracy_and_recall_by_hand():
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert zero_shot_accuracy(audio, labels, [{0}, {1}, {1}]) == pytest.approx(2 / 3)
    assert zero_shot_accuracy(audio, labels, [{0, 1}, {1}, {0}]) == 1.0
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    r = retrieval_recall(queries, items, [0, 1, 2], ks=(1, 2))
    assert r == {1: pytest.approx(2 / 3), 2: 1.0}
    # a constant encoder: ties count against, so R@1 is not perfect
    flat = retrieval_recall(torch.ones(4, 2), torch.ones(4, 2), [0, 1, 2, 3], ks=(1, 4))
    assert flat == {1: 0.0, 4: 1.0}


class ToneEncoder:
    """Fake CLAP: audio -> one-hot of the window's constant level (0.1 -> 0, 0.2 -> 1, ...);
    text -> one-hot looked up in a table."""

    name, dim, sample_rate, batch_size = "tone", 4, 8000, 8

    def __init__(self, table: dict[str, int]) -> None:
        self.table = table

    def embed_audio(self, windows):
        ids = np.rint(np.asarray(windows).mean(axis=1) * 10).astype(int) - 1
        return F.one_hot(torch.as_tensor(ids), self.dim).float()

    def embed_text(self, texts):
        return F.one_hot(torch.tensor([self.table[t] for t in texts], dtype=torch.long), self.dim).float()

    def fingerprint(self):
        return "tone"

    def export(self, directory):
        return None


def test_evaluate_clap_with_a_fake_encoder(tmp_path):
    files = []
    for k in range(4):
        files.append(str(tmp_path / f"{k}.wav"))
        sf.write(files[-1], np.full(8000, 0.1 * (k + 1), np.float32), 8000)
    table = {f"the sound of a {x}": i for i, x in enumerate("abcd")}
    table |= {"cap a": 0, "cap b": 1, "cap c": 3, "cap d": 3}
    labels = ["a", "b", "c", "d"]
    rows = [
        {"audio": files[0], "label": "a", "labels": labels},  # right
        {"audio": files[1], "label": "b", "labels": labels},  # right
        {"audio": files[2], "label": "c", "labels": labels},  # wrong: audio says c, prompt for c is 2 -> ok
        {"audio": files[3], "label": "a", "labels": ["a", "d"]},  # wrong: audio is d
        {"audio": files[0], "captions": ["cap a"]},  # rank 1
        {"audio": files[1], "captions": ["cap b"]},  # rank 1
        {"audio": files[2], "captions": ["cap c", "cap d"]},  # cap c -> clip 3 (miss), cap d -> clip 3 (miss)
        {"audio": files[3], "captions": ["cap d"]},  # rank 1
    ]
    out = evaluate_clap(ToneEncoder(table), rows, AudioConfig(clip_seconds=0.5), prompt="the sound of a {label}")
    assert out["classification"] == {"n": 4, "accuracy": 0.75, "chance": pytest.approx((3 / 4 + 1 / 2) / 4)}
    ret = out["retrieval"]
    assert ret["n_queries"] == 5 and ret["n_audio"] == 4
    assert ret["t2a_R@1"] == pytest.approx(3 / 5) and ret["chance_R@1"] == 0.25
    assert ret["t2a_R@10"] == 1.0 and ret["chance_R@10"] == 1.0


# ---- training


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mini"
    cfg = tiny_cfg(out.parent, augment=AugmentConfig(enabled=False))
    return out, cfg, train_mini_clap(pairs(world), out, cfg, progress=False)


def test_training_lowers_the_loss_and_writes_a_loadable_encoder(world, trained):
    out, cfg, summary = trained
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [10, 20, 30]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert summary["best_step"] in (10, 20, 30) and summary["val_recordings"] == 4  # one per label
    split = json.loads((out / "split.json").read_text())["val_recordings"]
    assert len(split) == 4 and len({r.split("/")[0] for r in split}) == 4

    encoder = build_encoder(EncoderConfig(backend="mini", path=str(out)))
    assert encoder.fingerprint() == summary["fingerprint"] and encoder.dim == 16
    # the saved weights are the best validation checkpoint's: re-measuring reproduces its score
    best = next(h for h in history if h["step"] == summary["best_step"])
    assert summary["val_score"] == best["val_score"]


def test_label_loss_changes_training_and_stays_deterministic(world, tmp_path):
    base = tiny_cfg(tmp_path, augment=AugmentConfig(enabled=False), steps=10, eval_every=10, label_loss=0.0)
    off = train_mini_clap(pairs(world), tmp_path / "off", base, progress=False)
    cfg = replace(base, label_loss=1.0)
    on = train_mini_clap(pairs(world), tmp_path / "on", cfg, progress=False)
    again = train_mini_clap(pairs(world), tmp_path / "again", cfg, progress=False)
    assert on["fingerprint"] == again["fingerprint"] != off["fingerprint"]
    assert on["first_loss"] > off["first_loss"]  # the label term adds to the same InfoNCE draws


def test_training_is_deterministic(world, trained, tmp_path):
    out, _, _ = trained
    short = tiny_cfg(out.parent, steps=6, eval_every=3)  # shares the fixture's caches
    first = train_mini_clap(pairs(world), tmp_path / "a", short, progress=False)
    again = train_mini_clap(pairs(world), tmp_path / "b", short, progress=False)
    assert again["fingerprint"] == first["fingerprint"]

    def history(run: str) -> list[dict]:
        lines = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in x.items() if k != "seconds"} for x in lines]

    assert len(history("a")) == 2 and history("a") == history("b")
    other = train_mini_clap(
        pairs(world), tmp_path / "c", tiny_cfg(out.parent, steps=6, eval_every=3, seed=1), progress=False
    )
    assert other["fingerprint"] != first["fingerprint"]
    # another seed validates on the same held-out recordings; another data_seed on others
    split = json.loads((tmp_path / "a" / "split.json").read_text())
    assert json.loads((tmp_path / "c" / "split.json").read_text()) == split
    train_mini_clap(pairs(world), tmp_path / "d", tiny_cfg(out.parent, steps=3, eval_every=3, data_seed=5), False)
    assert json.loads((tmp_path / "d" / "split.json").read_text()) != split


def test_training_config_errors(world, tmp_path):
    with pytest.raises(ClapTrainError, match="batch_size"):
        train_mini_clap(pairs(world), tmp_path / "x", tiny_cfg(tmp_path, batch_size=64), progress=False)
    with pytest.raises(ClapTrainError, match="label"):
        train_mini_clap(pairs(world), tmp_path / "x", tiny_cfg(tmp_path, prompt="no placeholder"), progress=False)
    with pytest.raises(ClapTrainError, match="label_loss must be >= 0"):
        train_mini_clap(pairs(world), tmp_path / "x", tiny_cfg(tmp_path, label_loss=-1.0), progress=False)
    with pytest.raises(ClapTrainError, match="no validation clips"):
        train_mini_clap(pairs(world), tmp_path / "x", tiny_cfg(tmp_path, val_fraction=0.0), progress=False)


# ---- the aisfx towers

TINY_AISFX = aisfx_net.AisfxConfig(width=TINY_AISFX_WIDTH)


def aisfx_cfg(tmp: Path, tower: str, weights: Path, **over) -> MiniClapTrainConfig:
    arch = replace(TINY, audio_tower=tower, aisfx=TINY_AISFX, aisfx_head_hidden=16)
    return tiny_cfg(tmp, arch=arch, aisfx_weights=str(weights), aisfx_views=2, aisfx_precision="fp32", **over)


@pytest.mark.parametrize("tower", ["aisfx", "both"])
def test_each_aisfx_tower_trains_saves_and_answers(world, aisfx_weights, tmp_path, tower):
    cfg = aisfx_cfg(tmp_path, tower, aisfx_weights, steps=12, eval_every=6)
    summary = train_mini_clap(pairs(world), tmp_path / "out", cfg, progress=False)
    history = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [6, 12] and all(math.isfinite(h["loss"]) for h in history)

    encoder = build_encoder(EncoderConfig(backend="mini", path=str(tmp_path / "out")))
    assert encoder.fingerprint() == summary["fingerprint"] and encoder.arch.audio_tower == tower
    audio = encoder.embed_audio(np.random.default_rng(0).standard_normal((2, SR)).astype(np.float32) * 0.1)
    assert audio.shape == (2, 16) and torch.isfinite(audio).all()
    # the frozen network is saved as loaded (fp16-exact, stored in fp16): training left it alone
    pretrained = aisfx_net.load_aisfx(aisfx_weights, TINY_AISFX).net.state_dict()
    for key, value in encoder.model.aisfx.net.state_dict().items():
        want = pretrained[key].half().float() if value.is_floating_point() else pretrained[key]
        assert torch.equal(value, want), key
    with safe_open(str(tmp_path / "out" / WEIGHTS_FILE), framework="pt") as f:
        assert f.get_slice("aisfx.net.conv_block1.conv1.weight").get_dtype() == "F16"
    # the head (and scratch tower) did train
    assert summary["final_loss"] != summary["first_loss"]
    # deterministic: a second run (from the caches) saves the same weights
    again = train_mini_clap(pairs(world), tmp_path / "again", cfg, progress=False)
    assert again["fingerprint"] == summary["fingerprint"]


def test_fill_views_shares_leave_training_nothing_to_embed(world, aisfx_weights, tmp_path, monkeypatch):
    """make model's views stage: two processes' shares of the bank, then the training finds it."""
    from mats_lab import aisfx_views

    cfg = aisfx_cfg(tmp_path, "aisfx", aisfx_weights, steps=2, eval_every=2)
    done = [fill_views(pairs(world), cfg, rank, 2, progress=False) for rank in (0, 1)]
    assert min(done) > 0 and fill_views(pairs(world), cfg, 0, 1, progress=False) == 0
    monkeypatch.setattr(aisfx_views, "make_view", lambda *a: pytest.fail("the training embedded a view"))
    assert train_mini_clap(pairs(world), tmp_path / "out", cfg, progress=False)["best_step"] == 2
    # towers without a cached bank have nothing to fill
    assert fill_views(pairs(world), tiny_cfg(tmp_path), progress=False) == 0


def test_aisfx_training_errors_name_the_weights(world, tmp_path):
    cfg = aisfx_cfg(tmp_path, "aisfx", tmp_path / "missing.safetensors")
    with pytest.raises(EncoderError, match="missing.safetensors: aisfx weights not found"):
        train_mini_clap(pairs(world), tmp_path / "x", cfg, progress=False)


def test_train_on_soundworld_reads_only_the_pairs_files(world, tmp_path):
    """clap/ also holds the audio twin's tasks.jsonl, which is not a pairs file."""
    data = tmp_path / "sw"
    (data / "clap").mkdir(parents=True)
    for name in ("train.jsonl", "val.jsonl", "audio"):
        (data / "clap" / name).symlink_to(world / "clap" / name)
    (data / "manifest.json").symlink_to(world / "manifest.json")
    task = {"text": "a hum", "instruction": "What is it?", "answer": "a hum", "task": "aqa", "audio": "audio/x.wav"}
    (data / "clap" / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    (tmp_path / "tasks" / "clap").mkdir(parents=True)
    (tmp_path / "tasks" / "clap" / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    result = train_on_soundworld(data, tmp_path / "out", tiny_cfg(tmp_path, steps=2, eval_every=2), progress=False)
    assert result["bench"] == {} and result["train"]["best_step"] == 2
    with pytest.raises(ClapTrainError, match="no clap/"):
        train_on_soundworld(tmp_path / "tasks", tmp_path / "out2", tiny_cfg(tmp_path), progress=False)


def test_fine_tuning_the_last_aisfx_block(world, aisfx_weights, tmp_path):
    cfg = aisfx_cfg(tmp_path, "aisfx", aisfx_weights, steps=4, eval_every=2, lr=0.05)
    cfg = replace(cfg, arch=replace(cfg.arch, aisfx_finetune_last_block=True), aisfx_finetune_lr_scale=1.0)
    summary = train_mini_clap(pairs(world), tmp_path / "out", cfg, progress=False)
    encoder = build_encoder(EncoderConfig(backend="mini", path=str(tmp_path / "out")))
    assert encoder.fingerprint() == summary["fingerprint"]
    pretrained = aisfx_net.load_aisfx(aisfx_weights, TINY_AISFX).net.state_dict()
    for key, value in encoder.model.aisfx.net.state_dict().items():
        same = torch.equal(value, pretrained[key].half().float() if value.is_floating_point() else pretrained[key])
        # the last block's weights trained; its batch-norm statistics and blocks 1-3 did not
        assert same == (not key.startswith("conv_block4.") or "running" in key or "num_batches" in key), key
    with safe_open(str(tmp_path / "out" / WEIGHTS_FILE), framework="pt") as f:
        assert f.get_slice("aisfx.net.conv_block4.conv1.weight").get_dtype() == "F32"  # trained: kept exact
        assert f.get_slice("aisfx.net.conv_block3.conv1.weight").get_dtype() == "F16"
    assert torch.isfinite(encoder.embed_audio(np.ones((1, SR), np.float32) * 0.1)).all()
