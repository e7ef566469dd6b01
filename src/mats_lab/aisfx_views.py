"""mini-CLAP's aisfx tower in training: each clip embedded once, whole and as augmented crops.

    bank = aisfx_bank(paths, train_idx, model, AugmentConfig(), views=4, crop_seconds=5.0, seed=0,
                      cache_dir=Path("~/.cache/mats/mini_clap"))   # (N, 1 + views, 512)
    fill_aisfx_bank(..., rank=r, world=2)  # process r's share of the same rows (make model's lanes)
    live = LiveViews(paths, train_idx, model, AugmentConfig(), crop_seconds=5.0, seed=0)
    live.views([3, 7])  # (2, 512) with gradients through the fine-tuned last block

The frozen aisfx network costs ~3.8 GFLOP per 2.3-s block (a 5-s crop has three), far more than a
step of the small head on top, so it never runs inside a training step: every clip is embedded
once whole (row 0: what validation uses, as it uses whole clips' log-mels) and every training
clip also as `views` augmented crops (rows 1..views; a validation clip repeats row 0 there); a step
draws one row per clip. The rows are cached in a mats.cache EmbeddingStore named by the tower's
weights and precision, keyed by the file's bytes and every setting that shapes the row (crop,
augmentation, seed, view number and the clip mixed in), so a second run, another tower choice or
another seed's head reuses what is there.

When the network's last block is fine-tuned (arch.aisfx_finetune_last_block), embeddings change with
every step and cannot be cached: LiveViews makes a fresh augmented crop per clip and step and runs
the network on it (blocks 1-3 without gradients), and validation embeds the whole clips again. That
costs about as much per step as the bank costs per clip: a GPU's work, not this 2-core CPU's.

Augmentation acts on the wave at the encoder's input rate (16 kHz), before the resampling to
44.1 kHz that MiniClap.embed_aisfx does in use as well, so it adds nothing above 8 kHz that use
never shows. Per view, from a generator seeded by (seed, the file's bytes, the view number):
  - a crop of crop_seconds at a random offset (a short clip tiled first, as mats.audio pads it),
    played at a speed in [1 - stretch, 1 + stretch]: tempo and pitch together, the log-mel
    path's stretch and pitch shift in one resampling;
  - with mix_prob, another training clip mixed in as background, mix_db below the clip's power;
  - a smooth random EQ curve over the mel scale (eq_db), as the log-mel path draws it;
  - with noise_prob, stationary noise with a random spectral tilt at a random SNR (snr_db).
Gain is not applied (aisfx peak-normalises every input, which undoes it) and neither are
SpecAugment's masks (they would act inside the network's front end).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr
import torch
from tqdm.auto import tqdm

from mats.audio import RESAMPLE_QUALITY, load_audio
from mats.cache import KEY, EmbeddingStore, cached_rows, hash_file
from mats.encoders import aisfx_net
from mats.encoders.base import state_fingerprint
from mats.encoders.mini import MiniClap, hz_to_mel

if TYPE_CHECKING:
    from collections.abc import Callable

    from mats_lab.clap_train import AugmentConfig

VIEW_STREAM = 4409  # the generators' own stream id: views do not move with other draws of the seed
CLIPS_PER_PASS = 16  # clips whose windows go through the network together (bounds the memory)
SHARD_ROWS = 2048  # rows per cache shard: the work an interrupted run can lose


# --------------------------------------------------------------------------------------------
# waveform augmentation (pure functions; randomness from an explicit generator)


def crop_wave(wave: np.ndarray, n: int, stretch: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32: a random stretch of `wave` (N,) covering n * r samples (r uniform in
    [1 - stretch, 1 + stretch]) resampled to n samples (a speed change). Short waves are tiled."""
    rate = 1.0 + stretch * (2 * rng.random() - 1) if stretch > 0 else 1.0
    span = max(2, int(round(n * rate)))
    if len(wave) < span:
        wave = np.tile(wave, -(-span // len(wave)))  # (>= span,)
    start = int(rng.integers(0, len(wave) - span + 1))
    crop = wave[start : start + span].astype(np.float32)  # (span,)
    if span != n:
        crop = soxr.resample(crop, span, n, quality=RESAMPLE_QUALITY).astype(np.float32)  # (~n,)
        crop = np.pad(crop[:n], (0, max(0, n - len(crop))))  # (n,): the resampler may round by a sample
    return crop


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_background(
    wave: np.ndarray, other: np.ndarray, mix_db: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """wave + other scaled to sit a random mix_db below wave's mean power (same length)."""
    below = mix_db[0] + (mix_db[1] - mix_db[0]) * rng.random()
    p_wave, p_other = _power(wave), _power(other)
    if p_wave == 0 or p_other == 0:
        return wave
    scale = np.sqrt(p_wave / p_other * 10 ** (-below / 10))
    return (wave + scale * other).astype(np.float32)


def eq_and_noise(wave: np.ndarray, sample_rate: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A smooth random EQ (three cosines over the mel-scale position of each FFT bin, amplitude
    eq_db / 3 each), then, with noise_prob, Gaussian noise tilted by up to +-6 dB across the band
    at an SNR drawn from snr_db below the equalised wave's power. Same length, float32."""
    n = len(wave)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)  # (F,)
    pos = hz_to_mel(freqs) / hz_to_mel(sample_rate / 2)  # (F,) in [0, 1]
    k = np.arange(1, 4)[:, None]  # (3, 1)
    amp = cfg.eq_db / 3 * (2 * rng.random((3, 1)) - 1)  # (3, 1) dB
    phase = 2 * np.pi * rng.random((3, 1))
    eq_db = (amp * np.cos(np.pi * k * pos[None] + phase)).sum(0)  # (F,)
    spectrum = np.fft.rfft(wave.astype(np.float64)) * 10 ** (eq_db / 20)  # (F,)
    out = np.fft.irfft(spectrum, n)  # (n,)
    if rng.random() < cfg.noise_prob:
        snr = cfg.snr_db[0] + (cfg.snr_db[1] - cfg.snr_db[0]) * rng.random()
        tilt_db = (2 * rng.random() - 1) * 12 * (pos - 0.5)  # (F,)
        noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * 10 ** (tilt_db / 20), n)  # (n,)
        p_out, p_noise = _power(out), _power(noise)
        if p_out > 0 and p_noise > 0:
            out = out + noise * np.sqrt(p_out / p_noise * 10 ** (-snr / 10))
    return out.astype(np.float32)


def make_view(
    wave: np.ndarray,
    other: np.ndarray | None,
    n: int,
    sample_rate: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """One augmented crop (n,) of `wave`, `other` the clip it may mix in (see the module doc);
    with cfg.enabled False, a plain crop at a random offset."""
    if not cfg.enabled:
        return crop_wave(wave, n, 0.0, rng)
    view = crop_wave(wave, n, cfg.stretch, rng)
    if other is not None and rng.random() < cfg.mix_prob:
        view = mix_background(view, crop_wave(other, n, 0.0, rng), cfg.mix_db, rng)
    return eq_and_noise(view, sample_rate, cfg, rng)


# --------------------------------------------------------------------------------------------
# the bank of embeddings


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.digest()


def _bank_plan(
    paths: list[str],
    train: list[int],
    model: MiniClap,
    augment: AugmentConfig,
    views: int,
    crop_seconds: float,
    seed: int,
    precision: str,
    batch_size: int,
    progress: bool,
) -> tuple[list, np.ndarray, Callable]:
    """The bank's rows as (items, keys, compute) for mats.cache: items[i] is (clip, view number,
    mixed-in clip or -1, the view's generator seed), view 0 the whole clip; keys[i] its cache key;
    compute(chunk, bar) embeds a chunk of items. The first len(paths) rows are the whole clips,
    then `views` rows per clip of `train`."""
    arch = model.arch
    sample_rate = arch.mel.sample_rate
    n = int(round(crop_seconds * sample_rate))
    file_digests = [hash_file(p).digest() for p in tqdm(paths, desc="hashing audio", disable=not progress)]
    whole_settings = json.dumps(
        {"format": aisfx_net.FORMAT, "sample_rate": sample_rate, "hop_frames": arch.aisfx_hop_frames}, sort_keys=True
    ).encode()
    view_settings = json.dumps(
        {"crop": n, "augment": asdict(augment), "seed": seed, "stream": VIEW_STREAM}, sort_keys=True
    ).encode()

    items, keys = [], []
    for i, digest in enumerate(file_digests):
        items.append((i, 0, -1, None))
        keys.append(_digest(b"whole", whole_settings, digest))
    others = np.asarray(train)
    position = {clip: j for j, clip in enumerate(train)}
    for i in train:
        for k in range(1, views + 1):
            gen_seed = [seed, VIEW_STREAM, int.from_bytes(file_digests[i][:8], "little"), k]
            j = int(np.random.default_rng([*gen_seed, 0]).integers(len(others) - 1))  # any training clip but itself
            other = int(others[j + (j >= position[i])])
            items.append((i, k, other, [*gen_seed, 1]))
            view_id = k.to_bytes(4, "little")
            keys.append(_digest(b"view", whole_settings, view_settings, file_digests[i], view_id, file_digests[other]))

    def compute(chunk: list, bar) -> torch.Tensor:
        out = []
        for s in range(0, len(chunk), CLIPS_PER_PASS):
            waves = []
            for clip, k, other, gen_seed in chunk[s : s + CLIPS_PER_PASS]:
                wave = load_audio(paths[clip], sample_rate)
                if k:
                    rng = np.random.default_rng(gen_seed)
                    wave = make_view(wave, load_audio(paths[other], sample_rate), n, sample_rate, augment, rng)
                waves.append(wave)
            out.append(model.embed_aisfx(waves, precision, batch_size).cpu())
            bar.update(len(waves))
        return torch.cat(out)  # (len(chunk), 512)

    return items, np.array(keys, dtype=KEY), compute


def _bank_store(cache_dir: Path, model: MiniClap, precision: str) -> EmbeddingStore:
    """The store of one tower's rows: named by its weights and precision."""
    tower = state_fingerprint("aisfx", model.aisfx.net, precision.encode())[:24]
    return EmbeddingStore(Path(cache_dir) / f"aisfx-{tower}", model.arch.aisfx.embed_dim)


def aisfx_bank(
    paths: list[str],
    train: list[int],
    model: MiniClap,
    augment: AugmentConfig,
    views: int,
    crop_seconds: float,
    seed: int,
    cache_dir: Path | None,
    precision: str = "bf16",
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """(N, 1 + views, 512) float32 mean-pooled aisfx embeddings of the clips `paths` by
    model.aisfx (row 0: the whole clip; rows 1..: augmented crops for the clips indexed by
    `train`, row 0 repeated for the others). Mixed-in clips are drawn from `train` only, so no
    held-out audio reaches a training view. cache_dir None: computed, not stored."""
    items, keys, compute = _bank_plan(
        paths, train, model, augment, views, crop_seconds, seed, precision, batch_size, progress
    )
    dim = model.arch.aisfx.embed_dim
    if cache_dir is None:
        with tqdm(total=len(items), desc="aisfx views", disable=not progress) as bar:
            rows = compute(items, bar)
    else:
        store = _bank_store(cache_dir, model, precision)
        cached_rows(store, keys, items, compute, progress=progress, desc="aisfx views", chunk=SHARD_ROWS)
        shard, row = store.locate(keys)
        rows = torch.from_numpy(store.gather(shard, row))
    bank = rows[: len(paths), None].repeat(1, 1 + views, 1)  # (N, 1 + views, 512): row 0 everywhere
    if views:
        bank[train, 1:] = rows[len(paths) :].reshape(len(train), views, dim)
    return bank


def fill_aisfx_bank(
    paths: list[str],
    train: list[int],
    model: MiniClap,
    augment: AugmentConfig,
    views: int,
    crop_seconds: float,
    seed: int,
    cache_dir: Path,
    precision: str = "bf16",
    batch_size: int = 64,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
) -> int:
    """Cache process `rank`'s share (of `world`) of the rows aisfx_bank would compute with the
    same arguments, so that several processes fill the bank side by side and aisfx_bank then
    finds every row (make model's `views` stage). Returns the rows this process computed."""
    items, keys, compute = _bank_plan(
        paths, train, model, augment, views, crop_seconds, seed, precision, batch_size, progress
    )
    store = _bank_store(cache_dir, model, precision)
    desc = f"aisfx views {rank + 1}/{world}"
    return cached_rows(store, keys, items, compute, rank, world, progress=progress, desc=desc, chunk=SHARD_ROWS)


class LiveViews:
    """Fresh views for fine-tuning the aisfx network's last block (see the module doc): the same
    crops and augmentation as the bank's, drawn anew each call from one seeded stream."""

    def __init__(
        self,
        paths: list[str],
        train: list[int],
        model: MiniClap,
        augment: AugmentConfig,
        crop_seconds: float,
        seed: int,
    ) -> None:
        self.paths, self.train, self.model, self.augment = paths, list(train), model, augment
        self.position = {clip: j for j, clip in enumerate(self.train)}
        self.sample_rate = model.arch.mel.sample_rate
        self.n = int(round(crop_seconds * self.sample_rate))
        self.rng = np.random.default_rng([seed, VIEW_STREAM, 1])

    def views(self, clips: list[int]) -> torch.Tensor:
        """(B, 512) embeddings of one augmented crop per clip, a training clip mixed in as the
        bank's views mix one; gradients flow into the last block."""
        waves = []
        for clip in clips:
            j = int(self.rng.integers(len(self.train) - 1))  # any training clip but itself
            other = self.train[j + (j >= self.position[clip])]
            wave, background = (load_audio(self.paths[c], self.sample_rate) for c in (clip, other))
            waves.append(make_view(wave, background, self.n, self.sample_rate, self.augment, self.rng))
        return self.model.pool_aisfx(waves)

    @torch.no_grad()
    def whole(self, model: MiniClap, clips: list[int]) -> torch.Tensor:
        """(B, 512) embeddings of the whole clips by `model` (the trained or the averaged weights)."""
        waves = [load_audio(self.paths[c], self.sample_rate) for c in clips]
        return torch.cat(
            [model.embed_aisfx(waves[i : i + CLIPS_PER_PASS]) for i in range(0, len(waves), CLIPS_PER_PASS)]
        )
