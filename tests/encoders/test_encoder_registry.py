"""mats.encoders: the backend registry, path resolution and embed_audio_items."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mats.audio import AudioError, prepare_audio
from mats.config import AudioConfig, EncoderConfig
from mats.encoders import (
    EncoderError,
    available_encoders,
    build_encoder,
    embed_audio_items,
    register_encoder,
)


class LinearEncoder:
    """A deterministic stand-in: embedding = windows @ W (rows independent of the batch)."""

    name = "linear-test"
    dim = 4
    sample_rate = 100
    batch_size = 32

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.calls: list[int] = []  # batch sizes seen

    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        self.calls.append(len(windows))
        weights = torch.arange(windows.shape[1] * self.dim, dtype=torch.float64).reshape(-1, self.dim)
        return (torch.from_numpy(windows).double() @ weights).float()  # (B, D)

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return torch.zeros(len(texts), self.dim)

    def fingerprint(self) -> str:
        return "linear"

    def export(self, directory: Path):
        return None


@register_encoder("linear-test")
def _build_linear(cfg: EncoderConfig, base_dir: Path | None) -> LinearEncoder:
    from mats.encoders import resolve_path

    return LinearEncoder(resolve_path(cfg, base_dir))


def write_noise(path: Path, seconds: float, sr: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr, subtype="FLOAT")
    return path


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(EncoderError, match="unknown encoder backend 'nope'; registered: .*hf-clap.*msclap.*tiny-clap"):
        build_encoder(EncoderConfig(backend="nope"))
    assert {"hf-clap", "tiny-clap", "msclap", "linear-test"} <= set(available_encoders())


def test_registered_factory_gets_the_resolved_path(tmp_path):
    relative = build_encoder(EncoderConfig(backend="linear-test", path="weights"), base_dir=tmp_path)
    assert relative.path == tmp_path / "weights"
    absolute = build_encoder(
        EncoderConfig(backend="linear-test", path=str(tmp_path / "w")), base_dir=Path("/elsewhere")
    )
    assert absolute.path == tmp_path / "w"
    assert build_encoder(EncoderConfig(backend="linear-test")).path is None


def test_import_does_not_load_transformers():
    code = "import sys, mats.encoders; assert 'transformers' not in sys.modules, 'transformers imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_embed_audio_items_mean_pools_windows(tmp_path):
    encoder = LinearEncoder()
    cfg = AudioConfig(clip_seconds=1.0, long_mode="mean_pool", max_windows=8)
    items = [
        write_noise(tmp_path / "a.wav", 2.5, 100, 0),  # 3 windows
        write_noise(tmp_path / "b.wav", 0.4, 200, 1),  # short, other rate: 1 window
        (np.random.default_rng(2).standard_normal((2, 420)).astype(np.float32), 100),  # stereo array: 5
    ]
    out = embed_audio_items(encoder, items, cfg, batch_size=2)
    assert out.shape == (3, 4)
    assert encoder.calls == [2, 2, 2, 2, 1]  # 9 windows streamed 2 at a time
    for row, item in zip(out, items):
        windows = prepare_audio(item, encoder.sample_rate, cfg)  # (W, n)
        expected = LinearEncoder().embed_audio(windows).mean(dim=0)  # mean of raw window embeddings
        torch.testing.assert_close(row, expected)


def test_embed_audio_items_with_tiny_clap(tmp_path):
    encoder = build_encoder(EncoderConfig(backend="tiny-clap"))
    cfg = AudioConfig(clip_seconds=1.0, long_mode="mean_pool")
    items = [write_noise(tmp_path / "long.wav", 3.2, 22050, 0), write_noise(tmp_path / "short.wav", 0.3, 16000, 1)]
    out = embed_audio_items(encoder, items, cfg, batch_size=3)
    for row, item in zip(out, items):
        expected = encoder.embed_audio(prepare_audio(item, 16000, cfg)).mean(dim=0)
        torch.testing.assert_close(row, expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(embed_audio_items(encoder, items, cfg, batch_size=3), out)  # same call, same bits


def test_embed_audio_items_errors_and_edge_cases(tmp_path, capsys):
    encoder = LinearEncoder()
    cfg = AudioConfig(clip_seconds=1.0)
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        embed_audio_items(encoder, [write_noise(tmp_path / "ok.wav", 1.0, 100, 0), missing], cfg)
    assert embed_audio_items(encoder, [], cfg).shape == (0, 4)
    with pytest.raises(EncoderError, match="batch_size"):
        embed_audio_items(encoder, [missing], cfg, batch_size=0)
    embed_audio_items(encoder, [write_noise(tmp_path / "p.wav", 1.0, 100, 0)], cfg, progress=True)
    assert "embedding audio" in capsys.readouterr().err
