"""mini-CLAP backend: log-mel against numpy, shapes, frozen weights, export round trip, errors;
the aisfx and both audio towers (a width-2 aisfx network from tests/fixtures/aisfx)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_AISFX_WIDTH
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mats.config import ConfigError, EncoderConfig, from_dict
from mats.encoders import EncoderError, aisfx_net, build_encoder
from mats.encoders.base import AudioTextEncoder
from mats.encoders.mini import (
    AISFX_FIELDS,
    CONFIG_FILE,
    WEIGHTS_FILE,
    LogMel,
    MelConfig,
    MiniClap,
    MiniClapArch,
    MiniClapEncoder,
    aisfx_waves,
    arch_dict,
    load_mini_clap,
    load_pretrained_aisfx,
    mel_filterbank,
    save_mini_clap,
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


# ---- the aisfx tower ("aisfx", "both")

TINY_AISFX = aisfx_net.AisfxConfig(width=TINY_AISFX_WIDTH)


def aisfx_model(tower: str, weights: Path, seed: int = 0, **over) -> MiniClap:
    torch.manual_seed(seed)
    arch = replace(TINY, audio_tower=tower, aisfx=TINY_AISFX, aisfx_head_hidden=12, **over)
    return load_pretrained_aisfx(MiniClap(arch), weights)


def test_scratch_architecture_is_saved_and_fingerprinted_as_before():
    """The aisfx fields stay out of a scratch model's mini_clap.json and fingerprint, so models
    saved before they existed load and fingerprint as they did (the shipped encoder's test)."""
    saved = arch_dict(MiniClapArch())
    assert not set(AISFX_FIELDS) & set(saved)
    assert from_dict(MiniClapArch, saved) == MiniClapArch()
    assert set(AISFX_FIELDS) <= set(arch_dict(MiniClapArch(audio_tower="both")))
    assert not any(n.startswith("aisfx") for n in tiny_model().state_dict())
    with pytest.raises(ConfigError, match="arch.audio_tower"):
        from_dict(MiniClapArch, {"audio_tower": "pretrained"}, prefix="arch")
    with pytest.raises(EncoderError, match="aisfx_finetune_last_block needs"):
        MiniClap(replace(TINY, aisfx_finetune_last_block=True))
    with pytest.raises(EncoderError, match="aisfx_hop_frames"):
        MiniClap(replace(TINY, audio_tower="aisfx", aisfx_hop_frames=0))


@pytest.mark.parametrize("tower", ["aisfx", "both"])
def test_aisfx_towers_embed_save_and_load(tower, aisfx_weights, tmp_path):
    model = aisfx_model(tower, aisfx_weights)
    encoder = MiniClapEncoder(model, aisfx_precision="fp32")  # "auto" would depend on this CPU
    assert encoder.sample_rate == SR  # the aisfx tower resamples inside: input stays 16 kHz
    windows = noise_windows(3, 1.0)
    audio = encoder.embed_audio(windows)
    assert audio.shape == (3, 16) and torch.isfinite(audio).all()

    # what embed_audio computes, step by step: 44.1-kHz windows -> aisfx blocks -> mean -> head
    with torch.no_grad():
        up = aisfx_waves(windows, SR)
        assert len(up[0]) == round(1.0 * aisfx_net.SAMPLE_RATE)
        pooled = aisfx_net.embed_clips(model.aisfx, up)  # (3, 512 / 32)
        if tower == "aisfx":
            want = model.aisfx_head(pooled)
        else:
            scratch = model.audio_tower(model.log_mel(torch.from_numpy(windows)))
            want = model.audio_proj(torch.cat([model.scratch_norm(scratch), model.aisfx_norm(pooled)], -1))
    torch.testing.assert_close(audio, want)

    cfg = encoder.export(tmp_path / "clap")
    with safe_open(str(tmp_path / "clap" / WEIGHTS_FILE), framework="pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    # the pretrained weights travel in float16 (exactly: they were rounded when loaded), the rest fp32
    assert {d for k, d in dtypes.items() if k.startswith("aisfx.") and "num_batches" not in k} == {"F16"}
    assert {d for k, d in dtypes.items() if not k.startswith("aisfx.") and "num_batches" not in k} == {"F32"}
    meta = json.loads((tmp_path / "clap" / CONFIG_FILE).read_text())
    assert meta["arch"]["audio_tower"] == tower and meta["arch"]["aisfx"] == {"width": 2, "pool": "max"}
    assert cfg.options == {"aisfx_precision": "fp32"}
    loaded = build_encoder(cfg, base_dir=tmp_path)
    assert loaded.aisfx_precision == "fp32"
    assert torch.equal(loaded.embed_audio(windows), audio)
    assert loaded.fingerprint() == encoder.fingerprint()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key

    # bf16 weights: the aisfx network runs under autocast, its front end stays fp32
    half = build_encoder(cfg, base_dir=tmp_path).to(dtype=torch.bfloat16)
    assert half.model.aisfx.log_mel.filterbank.dtype == torch.float32
    # the held dtype decides (aisfx_precision "fp32" is for a float32 encoder), nothing extra to key
    assert (half.held, half.aisfx_compute(), half.audio_cache_key()) == ("bf16", "bf16", "")
    assert half.aisfx_tower() is None  # its own network is the bf16 one: nothing to fold
    assert torch.nn.functional.cosine_similarity(half.embed_audio(windows), audio).min() > 0.99


def test_pretrained_aisfx_is_rounded_frozen_and_stays_in_eval(aisfx_weights):
    model = aisfx_model("aisfx", aisfx_weights)
    original = aisfx_net.load_aisfx(aisfx_weights, TINY_AISFX).net.state_dict()
    for key, value in model.aisfx.net.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, original[key].half().float()), key
    assert not any(p.requires_grad for p in model.aisfx.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("aisfx."))
    model.train()
    assert model.aisfx_head.training and not any(m.training for m in model.aisfx.modules())
    assert model.frozen_keys() == {k for k in model.state_dict() if k.startswith("aisfx.")}
    # fine-tuning the last block: its weights train, the rest stays frozen
    tuned = aisfx_model("aisfx", aisfx_weights, aisfx_finetune_last_block=True)
    trained = {n for n, p in tuned.aisfx.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("net.conv_block4.") for n in trained)
    assert not {f"aisfx.{n}" for n in trained} & tuned.frozen_keys()


def test_pool_aisfx_is_embed_aisfx_with_gradients_into_the_last_block(aisfx_weights):
    model = aisfx_model("aisfx", aisfx_weights, aisfx_finetune_last_block=True)
    waves = [noise_windows(1, 1.0)[0], noise_windows(1, 2.5, seed=1)[0]]
    pooled = model.pool_aisfx(waves)  # (2, 16)
    torch.testing.assert_close(pooled, model.embed_aisfx(waves), atol=1e-6, rtol=1e-5)
    pooled.sum().backward()
    grads = {n: p.grad for n, p in model.aisfx.net.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("conv_block4.") for n in grads)


def test_encode_checks_its_inputs(aisfx_weights):
    model = aisfx_model("both", aisfx_weights)
    with pytest.raises(EncoderError, match="log-mels and aisfx embeddings"):
        model.encode(aisfx=torch.zeros(2, TINY_AISFX.embed_dim))
    with pytest.raises(EncoderError, match="log-mels only"):
        tiny_model().encode(torch.zeros(2, 32, 50), torch.zeros(2, 16))


def test_aisfx_weight_errors_name_what_is_missing(aisfx_weights, tmp_path):
    with pytest.raises(EncoderError, match="aisfx weights not found; write them with scripts/convert_aisfx.py"):
        aisfx_model("aisfx", tmp_path / "nowhere.safetensors")
    with pytest.raises(EncoderError, match="has no aisfx tower"):
        load_pretrained_aisfx(tiny_model(), aisfx_weights)
    # a saved aisfx model whose weights file lacks the pretrained network
    model = aisfx_model("aisfx", aisfx_weights)
    save_mini_clap(model, tmp_path / "clap")
    state = load_file(tmp_path / "clap" / WEIGHTS_FILE)
    save_file({k: v for k, v in state.items() if not k.startswith("aisfx.")}, str(tmp_path / "clap" / WEIGHTS_FILE))
    with pytest.raises(EncoderError, match=r"no aisfx network weights \(aisfx\.\*\), which audio_tower 'aisfx'"):
        load_mini_clap(tmp_path / "clap")


@pytest.mark.parametrize("native", [True, False])
def test_aisfx_precision_auto_follows_the_hardware_and_keys_the_audio_cache(native, aisfx_weights, monkeypatch):
    """The "auto" precision computes the aisfx network in bf16 only where the device has bf16 in hardware; the
    audio cache key says so (text caches, keyed by the weights alone, are shared)."""
    import mats.encoders.mini as mini

    monkeypatch.setattr(mini, "native_bf16", lambda device: native)
    model = aisfx_model("aisfx", aisfx_weights)
    windows = noise_windows(2, 1.0)
    fp32, bf16, auto = (MiniClapEncoder(model, aisfx_precision=p) for p in ("fp32", "bf16", "auto"))
    assert (fp32.aisfx_compute(), bf16.aisfx_compute()) == ("fp32", "bf16")
    assert auto.aisfx_compute() == ("bf16" if native else "fp32")
    assert fp32.audio_cache_key() == "" and bf16.audio_cache_key() == "aisfx-bf16-folded"
    assert auto.audio_cache_key() == ("aisfx-bf16-folded" if native else "")
    # bf16 runs a folded bf16 copy of the network, built once and rebuilt after a move
    assert fp32.aisfx_tower() is None and bf16.aisfx_tower() is bf16.aisfx_tower()
    assert bf16.aisfx_tower().net.conv_block1.conv1.weight.dtype == torch.bfloat16
    folded = bf16.aisfx_tower()
    assert bf16.to(torch.device("cpu")).aisfx_tower() is not folded
    assert fp32.fingerprint() == bf16.fingerprint() == auto.fingerprint()

    z32, z16 = fp32.embed_audio(windows), bf16.embed_audio(windows)
    assert not torch.equal(z32, z16)  # bf16 really ran
    assert torch.nn.functional.cosine_similarity(z32, z16).min() > 0.99
    assert torch.equal(auto.embed_audio(windows), z16 if native else z32)
    # a scratch tower has no aisfx network: nothing to key
    assert MiniClapEncoder(tiny_model(), aisfx_precision="bf16").audio_cache_key() == ""


def test_aisfx_precision_option_is_checked(tmp_path):
    with pytest.raises(EncoderError, match="aisfx_precision must be one of"):
        MiniClapEncoder(tiny_model(), aisfx_precision="fp8")
    cfg = MiniClapEncoder(tiny_model()).export(tmp_path / "clap")
    assert cfg.options == {}  # "auto" is the default and is not written
    with pytest.raises(EncoderError, match=r"known: \['aisfx_precision', 'batch_size'\]"):
        build_encoder(replace(cfg, options={"precision": "bf16"}), base_dir=tmp_path)
    with pytest.raises(EncoderError, match="aisfx_precision must be one of"):
        build_encoder(replace(cfg, options={"aisfx_precision": "half"}), base_dir=tmp_path)
