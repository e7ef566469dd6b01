"""mini-CLAP's aisfx training inputs: waveform augmentation and the cached bank of embeddings
(a width-2 aisfx network from tests/fixtures/aisfx)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_AISFX_WIDTH

from mats.encoders import aisfx_net
from mats.encoders.mini import MelConfig, MiniClap, MiniClapArch, load_pretrained_aisfx
from mats_lab import aisfx_views
from mats_lab.aisfx_views import aisfx_bank, crop_wave, eq_and_noise, fill_aisfx_bank, make_view, mix_background
from mats_lab.clap_train import AugmentConfig

SR = 16000
TINY_AISFX = aisfx_net.AisfxConfig(width=TINY_AISFX_WIDTH)
ARCH = MiniClapArch(
    dim=8,
    stem_channels=[4, 8],
    width=16,
    blocks=2,
    mel=MelConfig(n_mels=32, n_fft=512, hop_length=160),
    audio_tower="aisfx",
    aisfx=TINY_AISFX,
    aisfx_head_hidden=8,
)


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# ---- waveform augmentation


def test_crop_wave_tiles_crops_and_stretches():
    rng = np.random.default_rng(0)
    wave = np.arange(100, dtype=np.float32)
    crop = crop_wave(wave, 40, 0.0, rng)
    assert crop.shape == (40,) and np.array_equal(crop, np.arange(crop[0], crop[0] + 40))  # a plain slice
    short = crop_wave(wave[:30], 70, 0.0, rng)  # tiled first, as mats.audio pads
    assert short.shape == (70,) and set(short.tolist()) <= set(range(30))
    stretched = crop_wave(tone(1.0, 440.0), 8000, 0.15, np.random.default_rng(1))
    assert stretched.shape == (8000,) and np.isfinite(stretched).all()
    again = crop_wave(tone(1.0, 440.0), 8000, 0.15, np.random.default_rng(1))
    assert np.array_equal(stretched, again)  # seeded


def test_speed_change_moves_the_pitch():
    """A stretch resamples span samples to n: the tone's frequency scales by span / n."""
    wave = tone(2.0, 1000.0)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rate = 1.0 + 0.15 * (2 * np.random.default_rng(seed).random() - 1)  # crop_wave's first draw
        crop = crop_wave(wave, 8000, 0.15, rng)
        peak = np.fft.rfftfreq(8000, 1 / SR)[np.abs(np.fft.rfft(crop)).argmax()]
        assert peak == pytest.approx(1000 * round(8000 * rate) / 8000, abs=4)


def test_mix_background_sits_below_the_clip():
    rng = np.random.default_rng(0)
    wave, other = tone(1.0, 440.0), tone(1.0, 3000.0) * 3
    mixed = mix_background(wave, other, (10.0, 25.0), rng)
    below = power_db(wave) - power_db(mixed - wave)
    assert 10.0 <= below <= 25.0
    assert np.array_equal(mix_background(np.zeros(100, np.float32), other[:100], (10.0, 25.0), rng), np.zeros(100))


def test_eq_and_noise():
    wave = tone(1.0, 440.0)
    flat = AugmentConfig(eq_db=0.0, noise_prob=0.0)
    np.testing.assert_allclose(eq_and_noise(wave, SR, flat, np.random.default_rng(0)), wave, atol=1e-5)
    # EQ alone: each bin's level moves by at most eq_db, and the tone stays a tone
    eq = eq_and_noise(wave, SR, AugmentConfig(eq_db=6.0, noise_prob=0.0), np.random.default_rng(0))
    assert abs(power_db(eq) - power_db(wave)) <= 6.0 + 1e-6
    assert np.abs(np.fft.rfft(eq)).argmax() == np.abs(np.fft.rfft(wave)).argmax()
    # noise alone, at an SNR inside snr_db
    cfg = AugmentConfig(eq_db=0.0, noise_prob=1.0, snr_db=(5.0, 30.0))
    noisy = eq_and_noise(wave, SR, cfg, np.random.default_rng(3))
    assert 5.0 - 0.01 <= power_db(wave) - power_db(noisy - wave) <= 30.0 + 0.01


def test_make_view_without_augmentation_is_a_crop():
    wave = np.arange(SR, dtype=np.float32)
    view = make_view(wave, None, 4000, SR, AugmentConfig(enabled=False), np.random.default_rng(0))
    assert np.array_equal(view, np.arange(view[0], view[0] + 4000))
    full = make_view(wave / SR, tone(1.0, 300.0), 4000, SR, AugmentConfig(mix_prob=1.0), np.random.default_rng(0))
    assert full.shape == (4000,) and full.dtype == np.float32 and np.isfinite(full).all()


# ---- the bank


@pytest.fixture(scope="module")
def model(aisfx_weights) -> MiniClap:
    torch.manual_seed(0)
    return load_pretrained_aisfx(MiniClap(ARCH), aisfx_weights)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for i, (seconds, hz) in enumerate([(1.0, 300.0), (0.6, 800.0), (1.3, 2000.0), (0.8, 5000.0), (1.0, 120.0)]):
        paths.append(str(root / f"{i}.wav"))
        sf.write(paths[-1], tone(seconds, hz), SR)
    return paths


def test_bank_rows(model, clips):
    train = [0, 1, 3]
    bank = aisfx_bank(clips, train, model, AugmentConfig(), 2, 0.5, 0, None, "fp32", progress=False)
    assert bank.shape == (5, 3, TINY_AISFX.embed_dim)
    # row 0: the whole clip, as the model embeds a 16-kHz wave in use
    from mats.audio import load_audio

    whole = model.embed_aisfx([load_audio(p, SR) for p in clips])
    torch.testing.assert_close(bank[:, 0], whole)
    # validation clips repeat it; training clips have views of their own, all different
    for i in (2, 4):
        assert torch.equal(bank[i, 1], bank[i, 0]) and torch.equal(bank[i, 2], bank[i, 0])
    for i in train:
        assert len({tuple(bank[i, k].tolist()) for k in range(3)}) == 3
    # the same seed gives the same views; another seed others
    assert torch.equal(aisfx_bank(clips, train, model, AugmentConfig(), 2, 0.5, 0, None, "fp32", progress=False), bank)
    other = aisfx_bank(clips, train, model, AugmentConfig(), 2, 0.5, 1, None, "fp32", progress=False)
    assert torch.equal(other[:, 0], bank[:, 0]) and not torch.equal(other[train, 1:], bank[train, 1:])


def test_bank_mixes_in_training_clips_only(model, clips, monkeypatch):
    loaded = []
    real = aisfx_views.load_audio
    monkeypatch.setattr(aisfx_views, "load_audio", lambda path, rate: loaded.append(path) or real(path, rate))
    train = [0, 1, 3]
    aisfx_bank(clips, train, model, AugmentConfig(), 3, 0.5, 0, None, "fp32", progress=False)
    assert loaded[:5] == clips  # the whole clips, then (view's clip, clip mixed in) pairs
    pairs = list(zip(loaded[5::2], loaded[6::2]))
    assert len(pairs) == 3 * len(train)
    assert all(own != other and other in {clips[i] for i in train} for own, other in pairs)


def test_bank_is_cached(model, clips, tmp_path, monkeypatch):
    cfg = AugmentConfig()
    first = aisfx_bank(clips, [0, 1, 3], model, cfg, 2, 0.5, 0, tmp_path, "fp32", progress=False)
    assert len(list(tmp_path.glob("aisfx-*/*.keys.npy"))) == 1
    monkeypatch.setattr(aisfx_views, "make_view", lambda *a: pytest.fail("recomputed a cached view"))
    assert torch.equal(aisfx_bank(clips, [0, 1, 3], model, cfg, 2, 0.5, 0, tmp_path, "fp32", progress=False), first)
    # other augmentation settings are other rows: recomputed
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        aisfx_bank(clips, [0, 1, 3], model, replace(cfg, eq_db=3.0), 2, 0.5, 0, tmp_path, "fp32", progress=False)


def test_processes_filling_their_shares_leave_the_whole_bank_cached(model, clips, tmp_path, monkeypatch):
    """make model's views stage: ranks 0 and 1 of 2 each compute about half of the rows, and
    aisfx_bank then finds all of them (equal to a bank computed in one go) and computes none."""
    cfg = AugmentConfig()
    args = (clips, [0, 1, 3], model, cfg, 2, 0.5, 0)
    fresh = aisfx_bank(*args, None, "fp32", progress=False)
    done = [fill_aisfx_bank(*args, tmp_path, "fp32", rank=r, world=2, progress=False) for r in (0, 1)]
    assert sum(done) == 5 + 3 * 2 and min(done) >= 5  # 11 rows: the whole clips, then 2 views each
    assert fill_aisfx_bank(*args, tmp_path, "fp32", rank=0, world=2, progress=False) == 0  # nothing left
    monkeypatch.setattr(aisfx_views, "make_view", lambda *a: pytest.fail("recomputed a cached view"))
    cached = aisfx_bank(*args, tmp_path, "fp32", progress=False)
    assert torch.equal(cached, fresh)
