"""HTS-AT, the audio tower of MS-CLAP 2023, and its mel front end: a port for inference.

Ported from msclap 1.3.4 (`msclap/models/htsat.py`, by Ke Chen, after Microsoft's Swin
Transformer; MIT licence) and torchlibrosa 0.1.0 (`torchlibrosa/stft.py`: `Spectrogram`,
`LogmelFilterBank`; MIT licence). We port rather than import because msclap's package
`__init__` imports torchaudio (no wheel loads beside our torch) and torchlibrosa needs librosa.

Module and parameter names are msclap's exactly, so `CLAP_weights_2023.pth` loads strictly.
Kept: the eval-mode forward for inputs of at most `spec_size * freq_ratio` frames (7 s at
44.1 kHz is 965 frames <= 1024), with token-semantic (tscam) pooling. Left out, because a frozen
encoder never reaches them: SpecAugment and mixup (training only), stochastic depth (identity in
eval), the sliding-crop branch for longer inputs (hard-coded to 689/344 frames in msclap), the
repeat mode and the attention heat map (both off in msclap's config).

Sizes are a dataclass so that tests can build the same architecture small; the defaults are what
msclap builds. Note the front end's defaults (32 kHz filterbank, fmax 14 kHz) come from msclap's
HTSAT config module, not from config_2023.yml: msclap's HTSATWrapper ignores the arguments it is
given, and the 2023 weights (their `melW` included) were trained that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HTSATConfig:
    # mel front end (msclap's htsat config module)
    sample_rate: int = 32000  # only shapes the mel filterbank; audio arrives at the CLAP rate
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    # Swin transformer (HTSAT_Swin_Transformer's defaults, which msclap uses)
    spec_size: int = 256
    patch_size: int = 4
    patch_stride: tuple[int, int] = (4, 4)
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 8
    mlp_ratio: float = 4.0
    num_classes: int = 527

    @property
    def num_features(self) -> int:
        """Width of the latent output (768 for the defaults): the audio projection's input."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def freq_ratio(self) -> int:
        return self.spec_size // self.mel_bins

    @property
    def max_frames(self) -> int:
        """The most STFT frames the image reshape takes (1024 for the defaults)."""
        return self.spec_size * self.freq_ratio

    def frames(self, n_samples: int) -> int:
        return n_samples // self.hop_size + 1  # centred STFT


# --------------------------------------------------------------------------------------------
# mel front end (torchlibrosa)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (scipy/librosa `get_window('hann', n, fftbins=True)`)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa `htk=False`): linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangles, Slaney-normalised: librosa.filters.mel's defaults."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # equal area per band
    return weights.astype(np.float32)


class STFT(nn.Module):
    """Real and imaginary STFT parts as two Conv1d over DFT kernels (torchlibrosa.stft.STFT)."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        out_channels = n_fft // 2 + 1
        x, y = np.meshgrid(np.arange(n_fft), np.arange(n_fft))
        dft = np.power(np.exp(-2 * np.pi * 1j / n_fft), x * y)  # (n_fft, n_fft)
        kernel = (dft[:, :out_channels] * hann_window(n_fft)[:, None]).T  # (F, n_fft)
        self.conv_real = nn.Conv1d(1, out_channels, kernel_size=n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, out_channels, kernel_size=n_fft, stride=hop_length, bias=False)
        self.conv_real.weight.data = torch.Tensor(np.real(kernel))[:, None, :]  # (F, 1, n_fft)
        self.conv_imag.weight.data = torch.Tensor(np.imag(kernel))[:, None, :]
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x[:, None, :], pad=(self.n_fft // 2, self.n_fft // 2), mode="reflect")  # (B, 1, n + n_fft)
        real = self.conv_real(x)[:, None].transpose(2, 3)  # (B, 1, T, F)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)  # (B, 1, T, F)
        return real, imag


class Spectrogram(nn.Module):
    """Power spectrogram (torchlibrosa.stft.Spectrogram, power 2, centred, reflect padding)."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.stft = STFT(n_fft, hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(x)  # (B, 1, T, F) each
        return real**2 + imag**2  # (B, 1, T, F)


class LogmelFilterBank(nn.Module):
    """Mel projection then power_to_db with ref 1.0, amin 1e-10, no top_db (as HTSAT sets it)."""

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, amin: float = 1e-10) -> None:
        super().__init__()
        self.amin = amin
        self.melW = nn.Parameter(torch.Tensor(mel_filterbank(sr, n_fft, n_mels, fmin, fmax).T), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(x, self.melW)  # (B, 1, T, M)
        # 10 log10(max(amin, ref=1.0)) is 0: nothing to subtract
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin))  # (B, 1, T, M)


# --------------------------------------------------------------------------------------------
# Swin transformer blocks (msclap/models/htsat.py)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window, window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, window, window, C) -> (B, H, W, C)."""
    b = int(windows.shape[0] / (h * w / window / window))
    x = windows.view(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, embed_dim: int, patch_stride: tuple[int, int]) -> None:
        super().__init__()
        self.img_size = (img_size, img_size)
        self.grid_size = (img_size // patch_stride[0], img_size // patch_stride[1])
        padding = ((patch_size - patch_stride[0]) // 2, (patch_size - patch_stride[1]) // 2)
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=patch_stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C)
        return self.norm(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid([torch.arange(window), torch.arange(window)], indexing="ij"))
        coords = torch.flatten(coords, 1)  # (2, w*w)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # (w*w, w*w, 2)
        rel[:, :, 0] += window - 1  # shift to start from 0
        rel[:, :, 1] += window - 1
        rel[:, :, 0] *= 2 * window - 1
        self.register_buffer("relative_position_index", rel.sum(-1))  # (w*w, w*w); saved in the checkpoint
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b_, n, c = x.shape  # (B * nW, w*w, C)
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # (B * nW, h, N, d) each
        attn = q @ k.transpose(-2, -1)  # (B * nW, h, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))  # (B * nW, N, C)


class SwinTransformerBlock(nn.Module):
    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window: int, shift: int, mlp_ratio: float
    ):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window:  # the window covers the whole map: no partition, no shift
            shift, window = 0, min(resolution)
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        attn_mask = None
        if shift > 0:  # mask attention between regions that the cyclic shift made adjacent
            h, w = resolution
            img_mask = torch.zeros((1, h, w, 1))
            slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            cnt = 0
            for hs in slices:
                for ws in slices:
                    img_mask[:, hs, ws, :] = cnt
                    cnt += 1
            mask_windows = window_partition(img_mask, window).view(-1, window * window)  # (nW, w*w)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
        self.register_buffer("attn_mask", attn_mask)  # (nW, w*w, w*w) or None (then not saved)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape  # (B, H*W, C)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.window).view(-1, self.window * self.window, c)  # (B * nW, w*w, C)
        windows = self.attn(windows, mask=self.attn_mask).view(-1, self.window, self.window, c)
        x = window_reverse(windows, self.window, h, w)  # (B, H, W, C)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve the resolution, double the width: concatenate each 2x2 neighbourhood, then project."""

    def __init__(self, resolution: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))  # (B, H*W/4, 2C)


class BasicLayer(nn.Module):
    def __init__(
        self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, window: int, cfg: HTSATConfig
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, cfg.mlp_ratio)
            for i in range(depth)
        )
        self.downsample: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class HTSAT(nn.Module):
    """msclap's HTSAT_Swin_Transformer (tscam on), eval forward: (B, n) audio -> dict of outputs."""

    def __init__(self, cfg: HTSATConfig) -> None:
        super().__init__()
        if cfg.spec_size % cfg.mel_bins or cfg.freq_ratio < 1:
            raise ValueError(f"spec_size ({cfg.spec_size}) must be a multiple of mel_bins ({cfg.mel_bins})")
        if len(cfg.depths) != len(cfg.num_heads):
            raise ValueError(f"depths {cfg.depths} and num_heads {cfg.num_heads} differ in length")
        self.cfg = cfg
        self.spectrogram_extractor = Spectrogram(cfg.window_size, cfg.hop_size)
        self.logmel_extractor = LogmelFilterBank(cfg.sample_rate, cfg.window_size, cfg.mel_bins, cfg.fmin, cfg.fmax)
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        self.patch_embed = PatchEmbed(cfg.spec_size, cfg.patch_size, cfg.embed_dim, cfg.patch_stride)
        grid = self.patch_embed.grid_size
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads, strict=True)):
            dim, res = cfg.embed_dim * 2**i, (grid[0] // 2**i, grid[1] // 2**i)
            layer = BasicLayer(dim, res, depth, heads, cfg.window, cfg)
            if i < len(cfg.depths) - 1:
                layer.downsample = PatchMerging(res, dim)
            self.layers.append(layer)
        self.norm = nn.LayerNorm(cfg.num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        sf = cfg.spec_size // 2 ** (len(cfg.depths) - 1) // cfg.patch_stride[0] // cfg.freq_ratio
        self.tscam_conv = nn.Conv2d(cfg.num_features, cfg.num_classes, kernel_size=(sf, 3), padding=(0, 1))
        self.head = nn.Linear(cfg.num_classes, cfg.num_classes)  # in the checkpoint, unused with tscam

    def reshape_wav2img(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, M) log-mel -> (B, 1, spec, spec): stretch T to spec*ratio, fold it into ratio rows."""
        ratio, spec = self.cfg.freq_ratio, self.cfg.spec_size
        target_t, target_f = spec * ratio, spec // ratio
        if x.shape[2] > target_t or x.shape[3] > target_f:
            raise ValueError(f"{x.shape[2]} frames x {x.shape[3]} mel bins exceed the {target_t} x {target_f} input")
        if x.shape[2] < target_t:
            x = F.interpolate(x, (target_t, x.shape[3]), mode="bicubic", align_corners=True)
        if x.shape[3] < target_f:
            x = F.interpolate(x, (x.shape[2], target_f), mode="bicubic", align_corners=True)
        x = x.permute(0, 1, 3, 2).contiguous()  # (B, 1, M, T)
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2], ratio, x.shape[3] // ratio)  # (B, 1, M, r, T/r)
        x = x.permute(0, 1, 3, 2, 4).contiguous()  # (B, 1, r, M, T/r)
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.shape[4])  # (B, 1, r*M, T/r)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        frames = x.shape[2]
        x = self.patch_embed(x)  # (B, N, C0)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)  # (B, N', C)
        b, _, c = x.shape
        n_down = 2 ** (len(self.cfg.depths) - 1)
        sf, st = frames // n_down // self.cfg.patch_stride[0], frames // n_down // self.cfg.patch_stride[1]
        x = x.permute(0, 2, 1).contiguous().reshape(b, c, sf, st)  # (B, C, F, T)
        c_freq_bin = sf // self.cfg.freq_ratio
        x = x.reshape(b, c, sf // c_freq_bin, c_freq_bin, st)  # group the folded frequency rows
        x = x.permute(0, 1, 3, 2, 4).contiguous().reshape(b, c, c_freq_bin, -1)  # (B, C, F/r, r*T)
        latent = torch.flatten(self.avgpool(torch.flatten(x, 2)), 1)  # (B, C): the embedding
        logits = torch.flatten(self.avgpool(torch.flatten(self.tscam_conv(x), 2)), 1)  # (B, classes)
        return {"clipwise_output": torch.sigmoid(logits), "latent_output": latent}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.logmel_extractor(self.spectrogram_extractor(x))  # (B, 1, T, M)
        x = x.to(self.bn0.weight.dtype)  # the front end stays fp32 when the rest is held in bf16
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # batch norm over mel bins
        return self.forward_features(self.reshape_wav2img(x))


class HTSATWrapper(nn.Module):
    """msclap's wrapper: the latent output is the embedding (and names the keys `base.htsat.*`)."""

    def __init__(self, cfg: HTSATConfig) -> None:
        super().__init__()
        self.htsat = HTSAT(cfg)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.htsat(x)
        out["embedding"] = out["latent_output"]
        return out
