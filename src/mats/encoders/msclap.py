"""The `msclap` backend: Microsoft CLAP 2023 (HTSAT + GPT-2), offline, loaded strictly.

    encoder:
      backend: msclap
      path: checkpoints/msclap/CLAP_weights_2023.pth      # {'model': state_dict}, as Microsoft ships it
      options: {version: "2023", text_model: checkpoints/gpt2}   # a local GPT-2 folder

We do not import the `msclap` package: its `__init__` imports torchaudio (no wheel loads beside
our torch), it fetches GPT-2 from the hub by name, its tokenisation calls `encode_plus` (gone in
transformers 5), it loads weights with strict=False, and it pins transformers<5 and numpy<2. The
model is ported instead (mats.encoders.msclap_model, mats.encoders.htsat: same module names, so
the checkpoint loads strictly) and checked against msclap's own modules in the tests.

The text tower's folder needs GPT-2's `config.json` and tokenizer files (e.g. `vocab.json` +
`merges.txt`, or `tokenizer.json`); its weights come from the CLAP checkpoint. `arch` overrides
the architecture's sizes (MSClap2023Config, HTSATConfig): only for small test models.

Audio windows are repeat-padded to the model's 7 s, as msclap pads short clips; we never
random-crop long audio as msclap's file helper does (windows arrive already cut). Embeddings are
the raw projection outputs, not normalised.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mats.config import ConfigError, EncoderConfig, from_dict
from mats.devices import to_device
from mats.encoders import register_encoder, resolve_path
from mats.encoders.base import EncoderError, cast_module, check_texts, check_windows, freeze, state_fingerprint

VERSIONS = ("2023",)  # 2022 (CNN14 + BERT) is not ported
OPTIONS = ("version", "text_model", "batch_size", "arch")


class MSClapEncoder:
    """A frozen MS-CLAP 2023 model (audio: HTSAT; text: GPT-2)."""

    name = "msclap"

    def __init__(
        self,
        clap: torch.nn.Module,
        tokenizer: Any,
        arch: Any,
        weights: Path,
        text_dir: Path,
        options: dict | None = None,
    ) -> None:
        options = dict(options or {})
        batch_size = int(options.get("batch_size", 32))
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        self.clap = freeze(clap)
        self.tokenizer = tokenizer  # MSClapTokenizer
        self.arch = arch  # MSClap2023Config
        self.version = "2023"
        self.weights = weights
        self.text_dir = text_dir
        self.options = options  # as configured, for export
        self.batch_size = int(batch_size)
        self.sample_rate = int(arch.sample_rate)
        self.dim = int(arch.d_proj)
        self.window_samples = arch.window_samples  # the model was trained on clips of exactly this length
        self._fingerprint: str | None = None

    # ---- placement

    @property
    def device(self) -> torch.device:
        return self.clap.logit_scale.device

    def to(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> MSClapEncoder:
        """Hold the model on `device` in `dtype`; HTSAT's STFT and mel filters stay fp32 (a round
        trip through bf16 would coarsen them). Embeddings come back float32 on the CPU."""
        if dtype is not None and dtype != self.clap.logit_scale.dtype:
            self._fingerprint = None  # the weights' bytes change, and so do the embeddings
            htsat = self.clap.audio_encoder.base.htsat
            cast_module(self.clap, dtype, keep=[htsat.spectrogram_extractor, htsat.logmel_extractor])
        self.clap.to(device=device)
        return self

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
            # repeat-pad to the model's duration, as msclap does for short clips
            repeats = -(-self.window_samples // n)
            windows = np.tile(windows, (1, repeats))[:, : self.window_samples]  # (B, n_model)
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + self.batch_size]))  # (b, n)
            embedding, _ = self.clap.audio_encoder(to_device(batch, self.device))  # (b, D), class probabilities
            out.append(embedding.float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        texts = check_texts(texts)
        out = []
        for start in range(0, len(texts), self.batch_size):
            try:
                tokens = self.tokenizer(texts[start : start + self.batch_size])  # (b, L) each
            except ValueError as err:
                raise EncoderError(str(err)) from None
            tokens = {k: to_device(v, self.device) for k, v in tokens.items()}
            out.append(self.clap.caption_encoder(tokens).float().cpu())  # (b, D)
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            # the tokenizer's vocabulary and merges shape text embeddings as much as the weights do
            vocab = json.dumps(self.tokenizer.tokenizer.get_vocab(), sort_keys=True).encode()
            backend = getattr(self.tokenizer.tokenizer, "backend_tokenizer", None)  # merges, normaliser
            merges = backend.to_str().encode() if backend is not None else b""
            extra = hashlib.sha256(vocab + b"\0" + merges).digest()
            self._fingerprint = state_fingerprint(f"msclap-{self.version}", self.clap, extra)
        return self._fingerprint

    def export(self, directory: Path) -> EncoderConfig | None:
        """Nothing is copied (the files stay where the user keeps them); the config names them by
        absolute path, so a trained model reloads from its own directory whatever the CWD."""
        options = {**self.options, "text_model": str(self.text_dir.resolve())}
        return EncoderConfig(backend="msclap", path=str(self.weights.resolve()), options=options)


def read_checkpoint(weights: Path) -> dict[str, torch.Tensor]:
    """The state dict inside msclap's `{'model': state_dict}` file."""
    try:
        blob = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # the file may carry non-tensor training state; it is the user's own local checkpoint,
        # which msclap itself loads this way
        blob = torch.load(weights, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or not isinstance(blob.get("model"), dict):
        keys = sorted(blob)[:5] if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"expected msclap's {{'model': state_dict}}, found {keys}")
    return blob["model"]


def _options(cfg: EncoderConfig, base_dir: Path | None):
    unknown = sorted(set(cfg.options) - set(OPTIONS))
    if unknown:
        raise EncoderError(f"unknown option(s) {unknown} for the msclap encoder; known: {sorted(OPTIONS)}")
    version = str(cfg.options.get("version", "2023"))
    if version not in VERSIONS:
        raise EncoderError(f"msclap version must be one of {list(VERSIONS)}, got {version!r} (2022 is not ported)")
    weights = resolve_path(cfg, base_dir)
    if weights is None:
        raise EncoderError(f"the msclap backend needs encoder.path: the local CLAP_weights_{version}.pth file")
    if not weights.is_file():
        raise EncoderError(f"{weights}: msclap weights file not found")
    text_model = cfg.options.get("text_model")
    if not text_model:
        raise EncoderError(
            "the msclap backend needs encoder.options.text_model: a local GPT-2 folder (config.json and "
            "tokenizer files) for its text tower; nothing is fetched from a hub"
        )
    text_dir = resolve_path(EncoderConfig(backend="msclap", path=str(text_model)), base_dir)
    if not text_dir.is_dir():
        raise EncoderError(f"{text_dir}: text_model folder not found (a local GPT-2 config and tokenizer)")
    return weights, text_dir


@register_encoder("msclap", path_options=("text_model",))
def build_msclap(cfg: EncoderConfig, base_dir: Path | None) -> MSClapEncoder:
    weights, text_dir = _options(cfg, base_dir)
    try:
        from mats.encoders.msclap_model import (
            CLAP2023,
            MSClap2023Config,
            MSClapTokenizer,
            load_clap_state,
            load_text_tower,
        )

        arch = from_dict(MSClap2023Config, cfg.options.get("arch"), prefix="encoder.options.arch")
        gpt2_config, hf_tokenizer = load_text_tower(text_dir)
        tokenizer = MSClapTokenizer(hf_tokenizer, arch.text_len, gpt2_config.n_positions)
    except ImportError as err:
        raise EncoderError(f"the msclap backend needs the {err.name} package, which does not import ({err})") from None
    except ConfigError as err:
        raise EncoderError(str(err)) from None
    except (OSError, ValueError) as err:
        raise EncoderError(f"{text_dir}: cannot load the GPT-2 text tower's config and tokenizer ({err})") from None
    if arch.htsat.frames(arch.window_samples) > arch.htsat.max_frames:
        raise EncoderError(
            f"{arch.duration:g} s at {arch.sample_rate} Hz is more frames than HTSAT's input ({arch.htsat.max_frames})"
        )
    try:
        with torch.random.fork_rng(devices=[]):  # random init is overwritten; leave the caller's RNG alone
            clap = CLAP2023(arch, gpt2_config)
    except ValueError as err:
        raise EncoderError(f"encoder.options.arch: {err}") from None
    try:
        load_clap_state(clap, read_checkpoint(weights))
    except Exception as err:  # a wrong file surfaces as many different errors
        raise EncoderError(f"{weights}: not MS-CLAP 2023 weights for this architecture ({err})") from None
    return MSClapEncoder(clap, tokenizer, arch, weights, text_dir, cfg.options)
