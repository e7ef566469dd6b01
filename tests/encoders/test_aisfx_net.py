"""The aisfx port (mats.encoders.aisfx_net) against aisfx 0.1.2's own code.

Reference numbers in tests/fixtures/aisfx were computed once with the wheel's own source
(make_reference.py there): its librosa front end and mel filterbank (librosa 0.9.2), a width-2
EmbeddingNet, and the shipped checkpoint's embedding of one block. Tests that need the real weights
(MATS_AISFX_WEIGHTS, else scripts/convert_aisfx.py's default output) or the wheel itself
(MATS_AISFX_WHEEL) skip without them; nothing here downloads.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mats.encoders import aisfx_net as A
from mats.encoders.base import EncoderError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "aisfx"
TINY = A.AisfxConfig(width=2)


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _module(FIXTURES / "make_reference.py", "aisfx_make_reference")
CONVERT = _module(ROOT / "scripts" / "convert_aisfx.py", "convert_aisfx")


@pytest.fixture(scope="module")
def spectrogram():
    return np.load(FIXTURES / "spectrogram.npz")


@pytest.fixture(scope="module")
def network():
    return np.load(FIXTURES / "network.npz")


@pytest.fixture(scope="module")
def tiny_net() -> A.EmbeddingNet:
    net = A.EmbeddingNet(TINY)
    net.load_state_dict(A.embedding_state(load_file(FIXTURES / "tiny_checkpoint.safetensors"), TINY))
    return net.eval()


def _long_clip(seconds: float = 5.0) -> np.ndarray:
    t = np.arange(int(seconds * A.SAMPLE_RATE)) / A.SAMPLE_RATE
    return (np.sin(2 * np.pi * 300 * t * (1 + t)) * np.exp(-((t % 1.3) * 2)) + 0.1 * np.sin(9000 * t)).astype(
        np.float32
    )


# --- front end ----------------------------------------------------------------------------------


def test_mel_filterbank_matches_aisfx_librosa_call(spectrogram):
    fb = A.mel_filterbank()  # (F, M)
    assert fb.shape == (A.N_FFT // 2 + 1, A.N_MELS)
    np.testing.assert_allclose(fb, spectrogram["mel_fb"].T, atol=1e-6)
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-5)  # unit-sum triangles, none empty


def test_mel_filterbank_matches_installed_librosa():
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0)
    np.testing.assert_allclose(A.mel_filterbank(), want.T, atol=1e-6)


def test_front_end_equals_aisfx_transposed(spectrogram):
    """aisfx's librosa path gives (mel, time); the fixture holds it transposed, (time, mel), and
    the port's front end gives exactly that layout and those values."""
    clip = A.peak_normalise(REF.reference_signal())
    centred = np.pad(clip, (A.N_FFT // 2, A.N_FFT // 2))  # librosa's centred frames, zero padding
    mel = A.LogMel()(torch.from_numpy(centred)[None])[0].numpy()  # (T, 96)
    want = spectrogram["spec"]  # (time, mel)
    assert mel.shape == want.shape == (1 + clip.size // A.HOP, A.N_MELS)
    np.testing.assert_allclose(mel, want, atol=2e-5)


def test_network_refuses_a_mel_time_spectrogram(spectrogram, tiny_net):
    mel_time = torch.from_numpy(spectrogram["spec"].T.copy())[None]  # (1, 96, T): aisfx's librosa layout
    with pytest.raises(EncoderError, match="transposed"):
        tiny_net(mel_time)
    assert tiny_net(mel_time.transpose(1, 2)).shape == (1, TINY.embed_dim)


@pytest.mark.parametrize(("frames", "blocks"), [(30, 1), (100, 1), (149, 1), (150, 2), (199, 2), (216, 3), (250, 4)])
def test_block_count_follows_aisfx_blocking(frames, blocks):
    # aisfx preprocessing.blocking(drop_partial_block=True): ceil((T - 100) / 50 + 1), minus a partial block
    assert A.n_blocks(frames) == blocks


def test_windows_are_the_blocks_of_the_whole_clip_spectrogram():
    clip = A.peak_normalise(_long_clip(5.0))  # 216 centred frames: blocks at 0, 50, 100
    whole = A.LogMel()(torch.from_numpy(np.pad(clip, (A.N_FFT // 2, A.N_FFT // 2)))[None])[0]  # (T, 96)
    windows = A.clip_windows(_long_clip(5.0))
    assert windows.shape == (A.n_blocks(whole.shape[0]), A.WINDOW_SAMPLES) == (3, 103_424)
    per_window = A.LogMel()(torch.from_numpy(windows))  # (3, 100, 96)
    for k in range(3):
        s = k * A.BLOCK_HOP_FRAMES
        torch.testing.assert_close(per_window[k], whole[s : s + A.BLOCK_FRAMES], atol=1e-5, rtol=1e-5)


def test_windows_without_overlap_are_every_other_block():
    clip = _long_clip(7.5)  # 324 frames: 5 half-overlapping blocks, 3 without overlap
    half, whole = A.clip_windows(clip), A.clip_windows(clip, hop_frames=A.BLOCK_FRAMES)
    assert half.shape[0] == 5 and whole.shape[0] == 3
    np.testing.assert_array_equal(whole, half[::2])
    with pytest.raises(EncoderError, match="hop_frames"):
        A.clip_windows(clip, hop_frames=0)


def test_short_and_silent_clips_give_one_window():
    w = A.clip_windows(np.zeros(1000, dtype=np.float32))
    assert w.shape == (1, A.WINDOW_SAMPLES) and not w.any()
    w = A.clip_windows(np.full(500, 0.25, dtype=np.float32))
    assert w.shape == (1, A.WINDOW_SAMPLES) and w.max() == 1.0  # peak-normalised
    with pytest.raises(EncoderError, match="mono"):
        A.clip_windows(np.zeros((2, 100), dtype=np.float32))


def test_front_end_stays_fp32_under_autocast():
    x = torch.from_numpy(A.clip_windows(_long_clip(3.0)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel = A.LogMel()(x)
    assert mel.dtype == torch.float32
    torch.testing.assert_close(mel, A.LogMel()(x))


# --- network and weights -----------------------------------------------------------------------


def test_port_equals_aisfx_network(network, tiny_net):
    x = torch.from_numpy(REF.tiny_input())  # (3, 16, 96)
    with torch.no_grad():
        out = tiny_net(x)
        one_by_one = torch.cat([tiny_net(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(out.numpy(), network["tiny_out"], atol=1e-5)
    torch.testing.assert_close(out, one_by_one, atol=1e-5, rtol=1e-5)
    assert out.abs().max() > 0.1  # not trivially zero


def test_channels_last_gives_the_same_embeddings(tiny_net):
    x = torch.from_numpy(REF.tiny_input())
    cl = A.EmbeddingNet(TINY)
    cl.load_state_dict(tiny_net.state_dict())
    cl = cl.eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(cl(x), tiny_net(x), atol=1e-5, rtol=1e-5)
    # the tower holds its network in that layout, and loading weights keeps it
    tower = A.AisfxTower(TINY)
    tower.net.load_state_dict(tiny_net.state_dict())
    assert tower.net.conv_block1.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_embedding_state_is_strict_and_names_keys():
    ckpt = load_file(FIXTURES / "tiny_checkpoint.safetensors")
    assert "fc.0.0.weight" in ckpt and "fc.0.0.weight" not in A.embedding_state(ckpt, TINY)
    missing = {k: v for k, v in ckpt.items() if k != "embedding_net.conv_block3.bn2.running_var"}
    with pytest.raises(EncoderError, match=r"missing keys \['conv_block3.bn2.running_var'\]"):
        A.embedding_state(missing, TINY)
    with pytest.raises(EncoderError, match="unexpected keys.*embedding_net.extra.weight"):
        A.embedding_state({**ckpt, "embedding_net.extra.weight": torch.zeros(1)}, TINY)
    with pytest.raises(EncoderError, match="unexpected keys.*'head.weight'"):
        A.embedding_state({**ckpt, "head.weight": torch.zeros(1)}, TINY)
    with pytest.raises(EncoderError, match=r"embedding_net\.conv_block1\.\S+ has shape \(2,.*the port expects \(4,"):
        A.embedding_state(ckpt, A.AisfxConfig(width=4))


def test_load_aisfx_checks_the_file(tmp_path):
    with pytest.raises(EncoderError, match="not found"):
        A.load_aisfx(tmp_path / "absent.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(EncoderError, match="not an aisfx weights file"):
        A.load_aisfx(plain)
    state = A.embedding_state(load_file(FIXTURES / "tiny_checkpoint.safetensors"), TINY)
    good = tmp_path / "tiny.safetensors"
    save_file(state, str(good), metadata={"format": A.FORMAT})
    tower = A.load_aisfx(good, TINY)
    assert not tower.training and not any(p.requires_grad for p in tower.parameters())
    with pytest.raises(EncoderError, match="do not fit"):
        A.load_aisfx(good)  # the full-width network


def test_embed_clips_batches_and_pools(tiny_net):
    tower = A.AisfxTower(TINY)
    tower.net.load_state_dict(tiny_net.state_dict())
    tower.eval()
    clips = [_long_clip(5.0), _long_clip(1.0)[::-1].copy(), _long_clip(3.5)]
    a = A.embed_clips(tower, clips, batch_size=64)
    b = A.embed_clips(tower, clips, batch_size=1)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    per_window = A.embed_windows(tower, A.clip_windows(clips[0]))  # (3, 16)
    torch.testing.assert_close(a[0], per_window.mean(0))
    torch.testing.assert_close(A.embed_clips(tower, clips[:1], pool="max")[0], per_window.amax(0))
    bf16 = A.embed_clips(tower, clips, precision="bf16")
    assert bf16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(bf16, a).min() > 0.99


def test_folded_tower_computes_the_same_embeddings(tiny_net):
    """Folding each batch norm into its convolution changes no embedding beyond float rounding in
    fp32 and stays within bf16 rounding in bf16; the tower it was folded from is left as it was."""
    tower = A.AisfxTower(TINY)
    tower.net.load_state_dict(tiny_net.state_dict())
    g = torch.Generator().manual_seed(0)
    for bn in (m for m in tower.net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        # norms far from the identity, so a norm dropped rather than folded shows
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 2 + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=g))
    tower.eval()
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    clips = [_long_clip(5.0), _long_clip(3.5)]
    ref = A.embed_clips(tower, clips)  # (2, 16)

    exact = A.folded_tower(tower, torch.float32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in exact.modules())
    torch.testing.assert_close(A.embed_clips(exact, clips), ref, atol=1e-5, rtol=1e-4)

    fast = A.folded_tower(tower)  # bf16
    weight = fast.net.conv_block2.conv1.weight
    assert weight.dtype == torch.bfloat16 and weight.is_contiguous(memory_format=torch.channels_last)
    out = A.embed_clips(fast, clips, precision="bf16")
    assert out.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(out, ref).min() > 0.99
    assert all(torch.equal(v, before[k]) for k, v in tower.state_dict().items())


# --- the real checkpoint (skipped without it) ---------------------------------------------------


def _weights() -> Path:
    return Path(os.environ.get("MATS_AISFX_WEIGHTS") or CONVERT.cache_dir() / "aisfx_embedding.safetensors")


def test_converted_checkpoint_reproduces_aisfx(spectrogram, network):
    if not _weights().is_file():
        pytest.skip(f"no converted aisfx weights at {_weights()} (scripts/convert_aisfx.py writes them)")
    tower = A.load_aisfx(_weights())
    block = np.zeros((1, A.BLOCK_FRAMES, A.N_MELS), dtype=np.float32)
    spec = spectrogram["spec"]
    block[0, : len(spec)] = spec  # aisfx's blocking pads a short spectrogram with zero frames
    with torch.no_grad():
        emb = tower.net(torch.from_numpy(block))[0].numpy()
    np.testing.assert_allclose(emb, network["full_embedding"], atol=1e-5)


def test_conversion_refuses_an_unknown_pickle():
    with pytest.raises(CONVERT.ConvertError, match="refusing to unpickle"):
        CONVERT.load_checkpoint(b"not aisfx", "x.pth")


def test_conversion_from_the_wheel_matches_its_network(tmp_path):
    wheel = os.environ.get("MATS_AISFX_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("MATS_AISFX_WHEEL does not name aisfx-0.1.2-py2.py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("aisfx/models/cnn2d.py", tmp_path)
    cnn = _module(tmp_path / "aisfx/models/cnn2d.py", "aisfx_cnn2d_live")
    out = tmp_path / "aisfx.safetensors"
    CONVERT.convert(*CONVERT.read_checkpoint_bytes(Path(wheel), None), out)
    data, _ = CONVERT.read_checkpoint_bytes(Path(wheel), None)
    weights, ds_dict = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)  # sha256 checked
    ref = cnn.CrossNet(cnn.EmbeddingNet("max", 3, 1, 64), ds_dict, "cpu")
    ref.load_state_dict(weights)
    torch.manual_seed(0)
    x = torch.rand(4, A.BLOCK_FRAMES, A.N_MELS)
    ours = A.load_aisfx(out)
    with torch.no_grad():
        torch.testing.assert_close(ours.net(x), ref.eval().get_embedding(x), atol=1e-5, rtol=1e-5)
