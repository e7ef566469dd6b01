"""The `msclap` backend: Microsoft CLAP (2022/2023) through the `msclap` package's CLAP wrapper.

Only available when `msclap` is importable. We do not depend on it: it pins old transformers and
numpy versions (and torchaudio), which would break the rest of this package.

    encoder: {backend: msclap, path: /models/CLAP_weights_2023.pth, options: {version: "2023"}}

cfg.path is the local weights file (the wrapper would otherwise download it from a hub). We use
the wrapper's model directly rather than its file-level helpers, because those random-crop long
audio (`load_audio_into_tensor`): our windows arrive already cut, and each is repeat-padded to the
model's duration exactly as the wrapper pads short clips. Embeddings are the raw projection
outputs (`clap.audio_encoder(x)[0]`, `clap.caption_encoder(tokens)`), not normalised.

The wrapper still fetches its text tokenizer ("gpt2" / "bert-base-uncased") by name through
transformers, so that tokenizer must be in the local Hugging Face cache when offline. It also
loads the weights with strict=False, so a file with missing keys is not detected.

Untested here: msclap cannot be installed in this environment without downgrading transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mats.config import EncoderConfig
from mats.encoders import register_encoder, resolve_path
from mats.encoders.base import EncoderError, check_texts, check_windows, freeze, state_fingerprint

MISSING_PACKAGE = "the msclap backend needs the msclap package (pip install msclap); it is not installed"
VERSIONS = ("2022", "2023")


class MSClapEncoder:
    """A frozen msclap CLAP model (audio: HTSAT or CNN14; text: GPT-2 or BERT)."""

    name = "msclap"

    def __init__(self, wrapper: Any, version: str, weights: Path, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        self.wrapper = wrapper
        self.clap = freeze(wrapper.clap)
        self.version = version
        self.weights = weights
        self.batch_size = int(batch_size)
        self.sample_rate = int(wrapper.args.sampling_rate)
        self.dim = int(wrapper.args.d_proj)
        # the model was trained on clips of exactly `duration` seconds
        self.window_samples = int(round(wrapper.args.duration * self.sample_rate))
        self._fingerprint: str | None = None

    @torch.no_grad()
    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        windows = check_windows(windows)  # (B, n)
        n = windows.shape[1]
        if n > self.window_samples:
            raise EncoderError(
                f"audio windows of {n / self.sample_rate:.2f} s are longer than msclap {self.version} "
                f"takes ({self.window_samples / self.sample_rate:g} s): lower audio.clip_seconds, and use "
                "audio.long_mode mean_pool to cover long clips"
            )
        if 0 < n < self.window_samples:
            # repeat-pad to the model's duration, as the wrapper does for short clips
            repeats = -(-self.window_samples // n)
            windows = np.tile(windows, (1, repeats))[:, : self.window_samples]  # (B, n_model)
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + self.batch_size]))  # (b, n)
            out.append(self.clap.audio_encoder(batch)[0].float())  # (b, D): [0] embedding, [1] class probs
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        texts = check_texts(texts)
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.wrapper.preprocess_text(texts[start : start + self.batch_size])
            out.append(self.clap.caption_encoder(tokens).float())  # (b, D)
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(f"msclap-{self.version}", self.clap)
        return self._fingerprint

    def export(self, directory: Path) -> EncoderConfig | None:
        return None  # path-based: the weights file stays where the user keeps it


@register_encoder("msclap")
def build_msclap(cfg: EncoderConfig, base_dir: Path | None) -> MSClapEncoder:
    allowed = {"version", "batch_size"}
    unknown = sorted(set(cfg.options) - allowed)
    if unknown:
        raise EncoderError(f"unknown option(s) {unknown} for the msclap encoder; known: {sorted(allowed)}")
    try:
        from msclap import CLAP
    except ImportError:
        raise EncoderError(MISSING_PACKAGE) from None
    except Exception as err:  # msclap imports torchaudio etc. at import time
        raise EncoderError(
            f"the msclap package is installed but does not import ({type(err).__name__}: {err})"
        ) from None

    version = str(cfg.options.get("version", "2023"))
    if version not in VERSIONS:
        raise EncoderError(f"msclap version must be one of {list(VERSIONS)}, got {version!r}")
    weights = resolve_path(cfg, base_dir)
    if weights is None:
        # without a path the wrapper would download the weights from a hub
        raise EncoderError(f"the msclap backend needs encoder.path: the local CLAP_weights_{version}.pth file")
    if not weights.is_file():
        raise EncoderError(f"{weights}: msclap weights file not found")
    try:
        wrapper = CLAP(model_fp=str(weights), version=version, use_cuda=False)
    except Exception as err:  # a wrong file surfaces as many different errors inside the wrapper
        raise EncoderError(
            f"{weights}: could not load msclap {version} weights ({type(err).__name__}: {err})"
        ) from None
    return MSClapEncoder(wrapper, version, weights, batch_size=int(cfg.options.get("batch_size", 32)))
