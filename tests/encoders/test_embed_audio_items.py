"""embed_audio_items: files decoded in worker threads give what decoding them in turn gives."""

import time

import numpy as np
import pytest
import soundfile as sf
import torch

import mats.encoders as encoders
from mats.audio import AudioError
from mats.config import AudioConfig
from mats.encoders import embed_audio_items


class Recorder:
    """A stand-in encoder: three statistics per window, and the size of every batch it saw."""

    sample_rate = 16000
    dim = 3

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        self.batches.append(len(windows))
        w = torch.from_numpy(windows).double()  # (b, n)
        return torch.stack([w.mean(1), w.std(1), w.abs().amax(1)], dim=1).float()  # (b, 3)


@pytest.fixture()
def items(tmp_path):
    """Files of different lengths, rates and channel counts, and an in-memory array."""
    rng = np.random.default_rng(0)
    out = []
    for i, (rate, seconds, channels) in enumerate(
        [(16000, 0.4, 1), (44100, 2.6, 2), (22050, 1.2, 1), (8000, 3.3, 1)] * 3
    ):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, 0.2 * rng.standard_normal((int(rate * seconds), channels)), rate)
        out.append(path)
    out.insert(5, (0.1 * rng.standard_normal(24000).astype(np.float32), 24000))
    return out


CFG = AudioConfig(clip_seconds=1.0, long_mode="mean_pool", max_windows=3)


def test_threaded_decoding_gives_what_decoding_in_turn_gives(items, monkeypatch):
    threaded = Recorder()
    got = embed_audio_items(threaded, items, CFG, batch_size=4)
    monkeypatch.setattr(encoders, "DECODE_WORKERS", 1)
    in_turn = Recorder()
    assert torch.equal(embed_audio_items(in_turn, items, CFG, batch_size=4), got)
    assert threaded.batches == in_turn.batches  # the same windows in the same encoder batches
    one_by_one = torch.cat([embed_audio_items(Recorder(), [item], CFG) for item in items])
    assert torch.equal(one_by_one, got)  # the stand-in is row-wise: batches do not matter


def test_the_first_bad_item_is_reported_and_the_rest_left_undecoded(items, tmp_path, monkeypatch):
    decoded = []
    prepare = encoders.prepare_audio

    def slow(item, **kwargs):
        decoded.append(item)
        time.sleep(0.02)
        return prepare(item, **kwargs)

    monkeypatch.setattr(encoders, "prepare_audio", slow)
    bad = [tmp_path / "missing1.wav", tmp_path / "missing2.wav"]
    batch = items[:3] + bad + items * 3
    with pytest.raises(AudioError, match="missing1.wav"):
        embed_audio_items(Recorder(), batch, CFG)
    assert len(decoded) < len(batch) // 2  # leaving cancelled the items not yet started
