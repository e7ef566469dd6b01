"""The aisfx audio tower: a pretrained sound-effects CNN and its log-mel front end, ported.

Ported from aisfx 0.1.2 (Ma & Lerch, "Representation Learning for the Automatic Indexing of Sound
Effects Libraries", ISMIR 2022): `aisfx/models/cnn2d.py` (`EmbeddingNet`, after the DCASE 2018
cross-task baseline by Qiuqiang Kong), `aisfx/inference.py`, `aisfx/preprocessing.py` and
`aisfx/spectrogram/spectrogram_librosa.py`. aisfx's code: MIT licence, Copyright (c) 2022 A.B. Ma
and A. Lerch. Its pretrained model (`aisfx/models/checkpoint.pth`, converted to safetensors by
scripts/convert_aisfx.py): CC BY 4.0, Copyright (c) 2022 A.B. Ma and A. Lerch. We port rather than
depend on the package: it pins librosa 0.9.2 and numpy 1.23, and the network is small.

    windows = clip_windows(wave_44k)           # (W, WINDOW_SAMPLES): the clip's ~2.3-s blocks
    tower = load_aisfx("aisfx.safetensors")    # AisfxTower, eval mode, frozen
    emb = tower(torch.from_numpy(windows))     # (W, 512)
    clip_emb = embed_clips(tower, [wave_44k])  # (1, 512): every window of every clip in batches

Front end (aisfx's "original" normalisation, the ISMIR paper's): mono 44.1 kHz audio peak-normalised
per clip; frames of 2048 samples every 1024 (periodic Hann window, power spectrum); 96 mel bands on
the HTK scale from 0 to 22,050 Hz, each triangle summing to 1 (librosa `filters.mel(htk=True,
norm=1)`); log10(1e4 * mel + 1) / 9.4578. The network reads (time, mel): aisfx's librosa path returns
(mel, time), and fed as it comes it gives embeddings without error but without meaning. Here the
front end returns (B, T, 96) and the network checks that its last axis has 96 bands.

Blocks: aisfx embeds blocks of 100 frames (2.3 s) every 50 frames of the whole clip's centred
spectrogram. A block's 100 frames see exactly WINDOW_SAMPLES = 2048 + 99 * 1024 samples of the
zero-padded clip, so `clip_windows` cuts those samples and the tower computes each window's frames
uncentred: a window's embedding equals the embedding of the same block of the whole-clip
spectrogram (tested). A clip shorter than one block is padded with silence, as aisfx pads it; its
last frame then holds the clip's final <1024 samples where aisfx's holds zeros.

The network: four blocks of two 3x3 convolutions (no bias) + batch norm + ReLU, 2x2 max pooling
after the first three; 64, 128, 256, 512 channels; mean over frequency, max over time -> 512-d.
The CrossNet classifier heads of aisfx's nine training data sets are not part of the embedding and
are not ported. Parameter names are aisfx's `embedding_net.*` ones without that prefix, so the
conversion is a strict key-for-key copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mats.encoders.base import EncoderError

SAMPLE_RATE = 44_100
N_FFT = 2048
HOP = 1024
N_MELS = 96
F_MAX = SAMPLE_RATE / 2
LOG_SCALE = 1e4  # log10(LOG_SCALE * mel + 1): essentia's "shift_scale_log" compression
SPEC_MAX = 9.457798957824707  # aisfx spectrogram_normalize("original"): the max over its training data
BLOCK_FRAMES = 100  # aisfx EMB_BLOCK_LENGTH
BLOCK_HOP_FRAMES = 50  # aisfx's default emb_hop_size 0.5
WINDOW_SAMPLES = N_FFT + (BLOCK_FRAMES - 1) * HOP  # 103,424 samples (2.35 s): what one block's frames see
FORMAT = "mats-aisfx/1"  # the safetensors metadata "format" written by scripts/convert_aisfx.py
CHECKPOINT_PREFIX = "embedding_net."  # aisfx's CrossNet keeps the embedding network under this name
DROPPED_PREFIX = "fc."  # CrossNet's per-data-set classifier heads: not part of the embedding


@dataclass(frozen=True)
class AisfxConfig:
    """The network's shape; the defaults are aisfx's `EmbeddingNet('max', 3, 1, 64)`."""

    width: int = 64  # channels of the first block; each next block doubles them
    pool: str = "max"  # pooling after blocks 1-3: "max" (aisfx's checkpoint) or "avg"

    @property
    def embed_dim(self) -> int:
        return self.width * 8


# --------------------------------------------------------------------------------------------
# front end


def mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) float32: HTK-scale triangles, each summing to 1 (librosa's
    `filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1).T`)."""
    # Imported here: mini-CLAP may import this module to use the tower (no import cycle then).
    from mats.encoders.mini import MelConfig
    from mats.encoders.mini import mel_filterbank as peak_one_bank

    bank = peak_one_bank(MelConfig(sample_rate=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, f_min=0.0, f_max=F_MAX))
    return (bank / bank.sum(axis=0, keepdims=True)).astype(np.float32)  # (F, M): unit sum per band


class LogMel(nn.Module):
    """(B, n) waves at 44.1 kHz -> (B, T, 96) normalised log-mel, T = 1 + (n - 2048) // 1024.
    Frames are not centred: `clip_windows` has already padded the clip. Always computed in fp32
    (under a bf16 autocast the mel projection would lose the small values log10(1e4 x + 1) spreads)."""

    def __init__(self) -> None:
        super().__init__()
        # buffers, not parameters: fixed, and rebuilt rather than loaded (non-persistent)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank()), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.dim() != 2 or waves.shape[-1] < N_FFT:
            raise EncoderError(f"aisfx front end: expected (batch, samples >= {N_FFT}) audio, got {tuple(waves.shape)}")
        with torch.autocast(device_type=waves.device.type, enabled=False):
            spec = torch.stft(
                waves.float(), N_FFT, hop_length=HOP, window=self.window, center=False, return_complex=True
            )  # (B, F, T)
            power = spec.real.square() + spec.imag.square()  # (B, F, T)
            mel = torch.einsum("bft,fm->btm", power, self.filterbank)  # (B, T, M): time first, as the net reads
            return torch.log10(LOG_SCALE * mel + 1.0) / SPEC_MAX  # (B, T, M)


def peak_normalise(wave: np.ndarray) -> np.ndarray:
    """wave / max|wave| (silence unchanged), as aisfx's librosa front end does per clip."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    return (wave / peak).astype(np.float32) if peak > 0 else wave.astype(np.float32)


def n_blocks(n_frames: int, hop_frames: int = BLOCK_HOP_FRAMES) -> int:
    """aisfx `preprocessing.blocking`'s block count for a spectrogram of n_frames, blocks every
    hop_frames (partial last block dropped, at least one)."""
    n = int(np.ceil((n_frames - BLOCK_FRAMES) / hop_frames + 1))
    if (n_frames - BLOCK_FRAMES) % hop_frames != 0:
        n -= 1
    return max(n, 1)


def clip_windows(wave: np.ndarray, normalise: bool = True, hop_frames: int = BLOCK_HOP_FRAMES) -> np.ndarray:
    """A mono 44.1-kHz clip (N,) -> (W, WINDOW_SAMPLES) float32 windows, one per aisfx block.

    The clip is peak-normalised (unless `normalise` is False), padded with N_FFT // 2 zeros at both
    ends (librosa's centred frames, `pad_mode="constant"`), and window k is padded samples
    [k * hop, k * hop + WINDOW_SAMPLES), hop = hop_frames * HOP, zero-filled past the end.
    hop_frames 50 is aisfx's (half-block overlap); 100 embeds half as many windows."""
    if not 1 <= hop_frames <= BLOCK_FRAMES:
        raise EncoderError(f"aisfx: hop_frames must be in 1..{BLOCK_FRAMES}, got {hop_frames}")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise EncoderError(f"aisfx: expected a non-empty mono clip (N,), got shape {wave.shape}")
    if normalise:
        wave = peak_normalise(wave)
    frames = 1 + wave.size // HOP  # centred frames of the whole clip
    count = n_blocks(frames, hop_frames)
    need = (count - 1) * hop_frames * HOP + WINDOW_SAMPLES
    padded = np.zeros(max(need, wave.size + N_FFT), dtype=np.float32)
    padded[N_FFT // 2 : N_FFT // 2 + wave.size] = wave
    starts = np.arange(count) * hop_frames * HOP
    return np.stack([padded[s : s + WINDOW_SAMPLES] for s in starts])  # (W, WINDOW_SAMPLES)


# --------------------------------------------------------------------------------------------
# the network (aisfx/models/cnn2d.py)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by batch norm and ReLU, then pooling."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int, pool_type: str) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, C, T, M)
        x = F.relu(self.bn2(self.conv2(x)))  # (B, C, T, M)
        if pool == 1:
            return x  # aisfx pools block 4 with a 1x1 kernel: the identity
        return F.max_pool2d(x, pool) if pool_type == "max" else F.avg_pool2d(x, pool)  # (B, C, T/2, M/2)


class EmbeddingNet(nn.Module):
    """(B, T, 96) log-mel -> (B, 8 * width) embedding (aisfx's `Cnn_9layers` EmbeddingNet)."""

    def __init__(self, cfg: AisfxConfig = AisfxConfig()) -> None:
        super().__init__()
        if cfg.pool not in ("max", "avg"):
            raise EncoderError(f"aisfx: pool must be 'max' or 'avg', got {cfg.pool!r}")
        self.cfg = cfg
        w = cfg.width
        self.conv_block1 = ConvBlock(1, w)
        self.conv_block2 = ConvBlock(w, 2 * w)
        self.conv_block3 = ConvBlock(2 * w, 4 * w)
        self.conv_block4 = ConvBlock(4 * w, 8 * w)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.last(self.trunk(mels))  # (B, 8w)

    def trunk(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, T, 96) log-mel -> (B, 4w, T/8, 12): blocks 1-3 (frozen even when the last block is
        fine-tuned, so a caller can run them without gradients)."""
        if mels.dim() != 3 or mels.shape[-1] != N_MELS:
            raise EncoderError(
                f"aisfx network: expected (batch, frames, {N_MELS} mel bands), got {tuple(mels.shape)}; "
                "a (mel, time) spectrogram must be transposed first"
            )
        x = mels[:, None]  # (B, 1, T, M)
        # (block 1's 1-channel weight looks channels-last either way: ask block 2's)
        if self.conv_block2.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # the layout the weights were put in
        pool = self.cfg.pool
        x = self.conv_block1(x, 2, pool)  # (B, w, T/2, 48)
        x = self.conv_block2(x, 2, pool)  # (B, 2w, T/4, 24)
        return self.conv_block3(x, 2, pool)  # (B, 4w, T/8, 12)

    def last(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4w, T/8, 12) trunk features -> (B, 8w): block 4, then pooling."""
        x = self.conv_block4(x, 1, self.cfg.pool)  # (B, 8w, T/8, 12)
        x = x.mean(dim=3)  # (B, 8w, T/8): average over frequency
        return x.amax(dim=2)  # (B, 8w): strongest moment in time


class AisfxTower(nn.Module):
    """(B, WINDOW_SAMPLES) 44.1-kHz windows -> (B, 512) aisfx embeddings (front end + network)."""

    def __init__(self, cfg: AisfxConfig = AisfxConfig()) -> None:
        super().__init__()
        self.log_mel = LogMel()
        # channels_last convolution weights: on the CPU (oneDNN) 1.4x faster in fp32 and ~1.9x in
        # bf16 than the default layout, with the same values (docs/experiments.md section 16);
        # loading weights keeps the layout, and saving and fingerprints read them as contiguous
        self.net = EmbeddingNet(cfg).to(memory_format=torch.channels_last)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        mels = self.log_mel(windows)  # (B, T, 96) fp32
        return self.net(mels.to(self.net.conv_block1.conv1.weight.dtype))  # (B, 8w)


def folded_tower(tower: AisfxTower, dtype: torch.dtype = torch.bfloat16) -> AisfxTower:
    """A frozen inference copy of `tower`: each batch norm folded into the convolution before it
    (torch's `fuse_conv_bn_weights`: the convolution gains a bias, the norm becomes the identity), the
    network held in `dtype`, channels-last, on the tower's device; the front end stays fp32.

    Why: on a CPU with bf16 in hardware the unfolded network under a bf16 autocast spends a quarter
    of its time on the norms and on casting weights at every call; the folded bf16 copy computes the
    same embeddings to bf16 rounding, faster (docs/experiments.md, "Latency"). For inference only:
    the copy's weights no longer train like the original's."""
    from copy import deepcopy

    from torch.nn.utils.fusion import fuse_conv_bn_weights

    copy = deepcopy(tower).eval().requires_grad_(False)
    for block in (copy.net.conv_block1, copy.net.conv_block2, copy.net.conv_block3, copy.net.conv_block4):
        for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
        block.bn1, block.bn2 = nn.Identity(), nn.Identity()
    copy.net.to(dtype=dtype, memory_format=torch.channels_last)
    return copy.requires_grad_(False)  # the fused parameters are new ones


# --------------------------------------------------------------------------------------------
# weights


def embedding_state(checkpoint: Mapping[str, torch.Tensor], cfg: AisfxConfig = AisfxConfig()) -> dict:
    """aisfx's CrossNet state dict -> EmbeddingNet's, strictly: every `embedding_net.*` key must
    match a parameter or buffer of the port (name and shape), every port key must be there, and the
    only other keys allowed are the classifier heads (`fc.*`). Errors name the keys."""
    want = EmbeddingNet(cfg).state_dict()
    out, unknown = {}, []
    for key, value in checkpoint.items():
        if key.startswith(CHECKPOINT_PREFIX):
            name = key[len(CHECKPOINT_PREFIX) :]
            if name not in want:
                unknown.append(key)
                continue
            if tuple(value.shape) != tuple(want[name].shape):
                raise EncoderError(
                    f"aisfx checkpoint: {key} has shape {tuple(value.shape)}, the port expects {tuple(want[name].shape)}"
                )
            out[name] = value.detach().clone().contiguous()
        elif not key.startswith(DROPPED_PREFIX):
            unknown.append(key)
    missing = sorted(set(want) - set(out))
    if unknown or missing:
        raise EncoderError(
            f"aisfx checkpoint does not match the port: unexpected keys {unknown}, missing keys {missing}"
        )
    return out


def load_aisfx(path: str | Path, cfg: AisfxConfig = AisfxConfig()) -> AisfxTower:
    """The tower with weights from a safetensors file written by scripts/convert_aisfx.py; eval mode,
    no gradients (a frozen tower: fine-tuning a block is the caller's choice)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: aisfx weights not found; write them with scripts/convert_aisfx.py")
    with safe_open(str(path), framework="pt") as f:
        fmt = (f.metadata() or {}).get("format")
        if fmt != FORMAT:
            raise EncoderError(f"{path}: not an aisfx weights file (metadata format {fmt!r}, expected {FORMAT!r})")
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    tower = AisfxTower(cfg)
    try:
        tower.net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise EncoderError(f"{path}: weights do not fit the aisfx network: {err}") from None
    return tower.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# clips


@torch.no_grad()
def embed_windows(
    tower: AisfxTower, windows: np.ndarray | torch.Tensor, batch_size: int = 64, precision: str = "fp32"
) -> torch.Tensor:
    """(N, WINDOW_SAMPLES) windows -> (N, 512) fp32 embeddings, `batch_size` windows per forward,
    on the tower's device; precision "bf16"/"fp16" autocasts the network (the front end stays fp32)."""
    from mats.devices import autocast, module_device, to_device

    device = module_device(tower)
    x = torch.as_tensor(windows, dtype=torch.float32)
    out = []
    with autocast(device, precision):
        for i in range(0, x.shape[0], batch_size):
            out.append(tower(to_device(x[i : i + batch_size], device)).float())  # (b, 512)
    return torch.cat(out) if out else torch.zeros(0, tower.net.cfg.embed_dim)


def embed_clips(
    tower: AisfxTower,
    clips: Sequence[np.ndarray],
    batch_size: int = 64,
    precision: str = "fp32",
    pool: str = "mean",
    hop_frames: int = BLOCK_HOP_FRAMES,
) -> torch.Tensor:
    """Mono 44.1-kHz clips -> (len(clips), 512): the windows of all clips embedded together in
    batches, then pooled per clip ("mean" or "max" over its windows)."""
    if pool not in ("mean", "max"):
        raise EncoderError(f"aisfx: pool must be 'mean' or 'max', got {pool!r}")
    per_clip = [clip_windows(c, hop_frames=hop_frames) for c in clips]
    counts = [len(w) for w in per_clip]
    if not counts:
        return torch.zeros(0, tower.net.cfg.embed_dim)
    emb = embed_windows(tower, np.concatenate(per_clip), batch_size, precision)  # (sum W, 512)
    parts = torch.split(emb, counts)
    return torch.stack([p.mean(0) if pool == "mean" else p.amax(0) for p in parts])  # (N, 512)
