"""mini-CLAP backend: log-mel against numpy, shapes, frozen weights, export round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mats.config import EncoderConfig
from mats.encoders import EncoderError, build_encoder
from mats.encoders.base import AudioTextEncoder
from mats.encoders.mini import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    LogMel,
    MelConfig,
    MiniClap,
    MiniClapArch,
    MiniClapEncoder,
    mel_filterbank,
)

SR = 16000
TINY = MiniClapArch(
    dim=16, stem_channels=[4, 8], width=24, blocks=2, mel=MelConfig(n_mels=32, n_fft=512, hop_length=160)
)
TEXTS = ["a dog barks twice", "rain falls on a tin roof while a car passes", "silence"]


def tiny_model(seed: int = 0) -> MiniClap:
    torch.manual_seed(seed)
    model = MiniClap(TINY)
    # non-trivial BatchNorm statistics, so eval-mode normalisation is exercised
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return model


def noise_windows(count: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((count, int(SR * seconds)))).astype(np.float32)  # (B, n)


@pytest.fixture(scope="module")
def encoder() -> MiniClapEncoder:
    return MiniClapEncoder(tiny_model())


# ---- log-mel


def numpy_log_mel(wave: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Direct computation: reflect-padded frames, periodic Hann, |rfft|^2, HTK triangles, log."""
    pad = cfg.n_fft // 2
    padded = np.pad(wave.astype(np.float64), pad, mode="reflect")
    n_frames = 1 + (len(padded) - cfg.n_fft) // cfg.hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)
    frames = np.stack([padded[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (T, F)

    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    points = np.linspace(mel(cfg.f_min), mel(cfg.f_max), cfg.n_mels + 2)
    hz = 700 * (10 ** (points / 2595) - 1)
    freqs = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    bank = np.zeros((cfg.n_mels, len(freqs)))
    for m in range(cfg.n_mels):
        left, centre, right = hz[m], hz[m + 1], hz[m + 2]
        for j, f in enumerate(freqs):
            if left < f <= centre:
                bank[m, j] = (f - left) / (centre - left)
            elif centre < f < right:
                bank[m, j] = (right - f) / (right - centre)
    return np.log(bank @ power.T + cfg.log_floor)  # (M, T)


@pytest.mark.parametrize("cfg", [MelConfig(), TINY.mel])
def test_log_mel_matches_numpy_on_a_sine(cfg):
    t = np.arange(SR) / SR
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    ours = LogMel(cfg)(torch.from_numpy(wave)[None])[0].numpy()  # (M, T)
    reference = numpy_log_mel(wave, cfg)
    assert ours.shape == reference.shape == (cfg.n_mels, len(wave) // cfg.hop_length + 1)
    loud = reference > np.log(1e-3)  # compare where there is energy (float32 vs float64 elsewhere)
    np.testing.assert_allclose(ours[loud], reference[loud], atol=2e-3)
    # the loudest band is the one whose centre is nearest 1 kHz
    points = np.linspace(2595 * np.log10(1 + cfg.f_min / 700), 2595 * np.log10(1 + cfg.f_max / 700), cfg.n_mels + 2)
    centres = 700 * (10 ** (points[1:-1] / 2595) - 1)
    assert ours[:, 10:-10].mean(axis=1).argmax() == np.abs(centres - 1000).argmin()


def test_filterbank_rejects_empty_filters():
    assert mel_filterbank(MelConfig()).shape == (513, 64)
    with pytest.raises(EncoderError, match="cover no FFT bin"):
        mel_filterbank(MelConfig(n_fft=256, n_mels=128))
    with pytest.raises(EncoderError, match="mel range"):
        mel_filterbank(MelConfig(f_max=9000.0))


# ---- the encoder


def test_shapes_and_protocol(encoder):
    assert isinstance(encoder, AudioTextEncoder)
    assert encoder.name == "mini" and encoder.dim == 16 and encoder.sample_rate == SR
    audio = encoder.embed_audio(noise_windows(3, 1.0))
    text = encoder.embed_text(TEXTS)
    assert audio.shape == (3, 16) and audio.dtype == torch.float32
    assert text.shape == (3, 16) and text.dtype == torch.float32
    assert encoder.embed_audio(np.zeros((0, SR), np.float32)).shape == (0, 16)
    assert encoder.embed_text([]).shape == (0, 16)
    # any window length works (global pooling), even shorter than the FFT
    assert encoder.embed_audio(noise_windows(2, 0.01)).shape == (2, 16)


def test_frozen_and_no_grad(encoder):
    params = list(encoder.model.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not any(m.training for m in encoder.model.modules())
    assert not encoder.embed_audio(noise_windows(1, 0.5)).requires_grad
    assert not encoder.embed_text(TEXTS[:1]).requires_grad


def test_audio_rows_do_not_depend_on_the_batch():
    small = MiniClapEncoder(tiny_model(), batch_size=2)
    windows = noise_windows(5, 0.5)
    single = torch.cat([small.embed_audio(windows[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(small.embed_audio(windows), single, atol=1e-5, rtol=1e-5)


def test_text_tower_is_mean_pooled_and_unit_norm(encoder):
    """A short text gives the same sentence embedding alone and padded in a batch with a long one."""
    tower = encoder.text_tower
    alone = tower.embed_text(["a dog"])
    batched = tower.embed_text(["a dog", "a very long sentence about many different sounds heard at once"])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(2))
    # the projection is the trained Linear on top
    torch.testing.assert_close(encoder.embed_text(["a dog"]), encoder.model.text_proj(alone))
    # related texts are closer than unrelated ones (the pretrained tower is really loaded)
    emb = tower.embed_text(["a dog barking", "a puppy barks", "a violin playing a melody"])
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_export_round_trip(encoder, tmp_path):
    cfg = encoder.export(tmp_path / "clap")
    assert cfg == EncoderConfig(backend="mini", path="clap", options={})
    assert {p.name for p in (tmp_path / "clap").iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    loaded = build_encoder(cfg, base_dir=tmp_path)
    windows = noise_windows(3, 1.0, seed=1)
    assert torch.equal(loaded.embed_audio(windows), encoder.embed_audio(windows))
    assert torch.equal(loaded.embed_text(TEXTS), encoder.embed_text(TEXTS))
    assert loaded.fingerprint() == encoder.fingerprint()
    assert not any(p.requires_grad for p in loaded.model.parameters())
    # the text tower is not copied: the export stays small
    assert sum(p.stat().st_size for p in (tmp_path / "clap").iterdir()) < 1_000_000


def test_fingerprint_follows_the_weights(encoder):
    other = MiniClapEncoder(tiny_model())
    assert other.fingerprint() == encoder.fingerprint()
    with torch.no_grad():
        other.model.text_proj.bias[0] += 1e-3
    other._fingerprint = None
    assert other.fingerprint() != encoder.fingerprint()
    assert MiniClapEncoder(tiny_model(seed=1)).fingerprint() != encoder.fingerprint()


def test_load_errors(encoder, tmp_path):
    with pytest.raises(EncoderError, match="needs encoder.path"):
        build_encoder(EncoderConfig(backend="mini"))
    with pytest.raises(EncoderError, match="not found"):
        build_encoder(EncoderConfig(backend="mini", path=str(tmp_path / "nowhere")))
    with pytest.raises(EncoderError, match="unknown option"):
        build_encoder(EncoderConfig(backend="mini", path=str(tmp_path), options={"batchsize": 2}))
    encoder.export(tmp_path / "clap")
    (tmp_path / "clap" / WEIGHTS_FILE).unlink()
    with pytest.raises(EncoderError, match="no mini_clap.safetensors"):
        build_encoder(EncoderConfig(backend="mini", path="clap"), base_dir=tmp_path)
    # weights that do not fit the architecture: a strict load refuses them
    MiniClapEncoder(tiny_model()).export(tmp_path / "clap")
    meta = json.loads((tmp_path / "clap" / CONFIG_FILE).read_text())
    meta["arch"]["width"] = 32
    (tmp_path / "clap" / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="do not fit"):
        build_encoder(EncoderConfig(backend="mini", path="clap"), base_dir=tmp_path)


def test_batch_size_option(tmp_path):
    cfg = MiniClapEncoder(tiny_model(), batch_size=4).export(tmp_path / "clap")
    assert cfg.options == {"batch_size": 4}
    assert build_encoder(cfg, base_dir=tmp_path).batch_size == 4
