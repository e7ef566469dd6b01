"""The msclap backend. msclap itself cannot be installed here (it downgrades transformers), so we
check the missing-package error and our glue against a stand-in for its CLAP wrapper."""

from __future__ import annotations

import sys
import types
from argparse import Namespace

import numpy as np
import pytest
import torch

from mats.config import EncoderConfig
from mats.encoders import EncoderError, build_encoder


def test_missing_package_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "msclap", None)  # `import msclap` now raises ImportError
    weights = tmp_path / "CLAP_weights_2023.pth"
    weights.write_bytes(b"")
    with pytest.raises(EncoderError) as err:
        build_encoder(EncoderConfig(backend="msclap", path=str(weights)))
    assert str(err.value) == "the msclap backend needs the msclap package (pip install msclap); it is not installed"


class FakeClap(torch.nn.Module):
    """Shapes like msclap's model: audio_encoder returns (embedding, class probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_proj = torch.nn.Linear(8, 3, bias=False)
        self.seen: list[tuple[int, ...]] = []

    def audio_encoder(self, audio: torch.Tensor):
        self.seen.append(tuple(audio.shape))
        return self.audio_proj(audio), None

    def caption_encoder(self, tokens: dict) -> torch.Tensor:
        return tokens["input_ids"].float()[:, :3] * 10  # raw, not normalised


class FakeWrapper:
    def __init__(self, model_fp: str, version: str, use_cuda: bool) -> None:
        self.clap = FakeClap()
        self.args = Namespace(sampling_rate=4, duration=2, d_proj=3)  # windows of 8 samples

    def preprocess_text(self, texts: list[str]) -> dict:
        return {"input_ids": torch.tensor([[len(t), 1, 2, 0] for t in texts])}


@pytest.fixture
def fake_msclap(monkeypatch, tmp_path):
    module = types.ModuleType("msclap")
    module.CLAP = FakeWrapper
    monkeypatch.setitem(sys.modules, "msclap", module)
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    return weights


def test_glue_pads_frozen_and_raw(fake_msclap):
    encoder = build_encoder(EncoderConfig(backend="msclap", path=str(fake_msclap), options={"batch_size": 2}))
    assert (encoder.name, encoder.dim, encoder.sample_rate) == ("msclap", 3, 4)
    assert not any(p.requires_grad for p in encoder.clap.parameters()) and not encoder.clap.training
    windows = np.arange(15, dtype=np.float32).reshape(5, 3)  # (5, 3): shorter than 8 samples
    out = encoder.embed_audio(windows)
    assert out.shape == (5, 3)
    assert encoder.clap.seen == [(2, 8), (2, 8), (1, 8)]  # batched, each padded to the duration
    padded = np.tile(windows, (1, 3))[:, :8]  # repeat padding
    torch.testing.assert_close(out, encoder.clap.audio_proj(torch.from_numpy(padded)))
    text = encoder.embed_text(["ab", "abcd", "x"])
    torch.testing.assert_close(text, torch.tensor([[20.0, 10, 20], [40, 10, 20], [10, 10, 20]]))
    assert encoder.export(fake_msclap.parent / "out") is None
    with pytest.raises(EncoderError, match="longer than msclap 2023 takes"):
        encoder.embed_audio(np.zeros((1, 9), dtype=np.float32))


def test_config_errors(fake_msclap):
    with pytest.raises(EncoderError, match="needs encoder.path"):
        build_encoder(EncoderConfig(backend="msclap"))
    with pytest.raises(EncoderError, match="version must be one of"):
        build_encoder(EncoderConfig(backend="msclap", path=str(fake_msclap), options={"version": "2024"}))
    with pytest.raises(EncoderError, match="weights file not found"):
        build_encoder(EncoderConfig(backend="msclap", path=str(fake_msclap.parent / "none.pth")))
    relative = build_encoder(EncoderConfig(backend="msclap", path=fake_msclap.name), base_dir=fake_msclap.parent)
    assert relative.weights == fake_msclap
