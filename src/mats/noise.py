"""Gaussian noise injection into CLAP text embeddings, and the rule that sets its variance.

Training sees `normalize(normalize(e) + eps)` with `eps ~ N(0, sigma * I)`: `sigma` is a
VARIANCE (paper value 0.015, so the standard deviation is sqrt(0.015) ~ 0.122), as in CapDec and
MATS. The noise is added to the unit-norm embedding and the result is re-normalised, so what the
mapper sees is always unit-norm.

Two ways to draw the noise:

- `inject_noise(emb, sigma, generator)`: one draw for the whole batch from a torch.Generator.
  The rows' noise then depends on the batch layout.
- `inject_noise_keyed(emb, sigma, seed=, step=, keys=)`: row i's noise is a pure function of
  (seed, step, keys[i]) — typically the sample's index in the dataset — so a run split over
  2 processes or 4 micro-batches draws exactly the same noise for a sample as a 1-process run.

Everything here is a pure function of its inputs (and seed): no global RNG is touched.
"""

from __future__ import annotations

import math
from typing import get_args

import torch
import torch.nn.functional as F

from mats.config import SigmaRule


class NoiseError(ValueError):
    """Bad input to a noise function (shape, sigma, keys)."""


_MASK64 = (1 << 64) - 1


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each vector (last dim) by its L2 norm; a zero vector stays zero (norm clamped)."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise NoiseError(f"noise sigma is a variance and must be finite and >= 0, got {sigma!r}")
    return sigma


def _check_emb(emb: torch.Tensor, name: str = "emb") -> None:
    if not isinstance(emb, torch.Tensor):
        raise NoiseError(f"{name} must be a torch.Tensor, got {type(emb).__name__}")
    if emb.dim() != 2:
        raise NoiseError(f"{name} must have shape (B, D), got {tuple(emb.shape)}")
    if not emb.is_floating_point():
        raise NoiseError(f"{name} must be a floating-point tensor, got {emb.dtype}")


def gaussian_noise(
    shape: tuple[int, ...] | torch.Size,
    sigma: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """eps ~ N(0, sigma) elementwise, i.e. standard deviation sqrt(sigma). sigma = 0 gives zeros."""
    sigma = _check_sigma(sigma)
    eps = torch.randn(tuple(shape), generator=generator, dtype=dtype)
    return eps * math.sqrt(sigma)


def inject_noise(emb: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """normalize(normalize(emb) + eps), eps ~ N(0, sigma) (sigma a variance). (B, D) -> (B, D).

    sigma = 0 returns normalize(emb) without drawing any random number. Without a generator
    torch's global RNG is used (avoid that where reproducibility matters).
    """
    _check_emb(emb)
    sigma = _check_sigma(sigma)
    unit = l2_normalize(emb)  # (B, D)
    if sigma == 0.0:
        return unit
    eps = gaussian_noise(unit.shape, sigma, generator, dtype=unit.dtype)  # (B, D)
    return l2_normalize(unit + eps)


# --------------------------------------------------------------------------------------------
# keyed noise: a function of (seed, step, key), independent of how a batch is split


def _splitmix64(x: int) -> int:
    """One round of SplitMix64: a bijective 64-bit mixer (Steele et al. 2014)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def noise_seed(seed: int, step: int, key: int) -> int:
    """A 63-bit generator seed that is a hash of (seed, step, key).

    Chaining the mixer (rather than e.g. seed + key) keeps nearby triples such as
    (seed 0, key 1) and (seed 1, key 0) from colliding.
    """
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(step) & _MASK64))
    h = _splitmix64(h ^ (int(key) & _MASK64))
    return h >> 1  # torch.Generator.manual_seed takes values < 2**63 without complaint


def keyed_gaussian_noise(
    dim: int,
    sigma: float,
    *,
    seed: int,
    step: int,
    keys: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(B, dim) noise; row i ~ N(0, sigma), from a generator seeded by (seed, step, keys[i])."""
    sigma = _check_sigma(sigma)
    if not isinstance(keys, torch.Tensor) or keys.dim() != 1 or keys.is_floating_point():
        raise NoiseError("keys must be a 1-D integer tensor (one key per row)")
    out = torch.empty(len(keys), dim, dtype=dtype)  # (B, D)
    gen = torch.Generator()  # one generator, re-seeded per row: cheaper than B generators
    for i, key in enumerate(keys.tolist()):
        gen.manual_seed(noise_seed(seed, step, key))
        out[i] = torch.randn(dim, generator=gen, dtype=dtype)
    return out * math.sqrt(sigma)


def inject_noise_keyed(emb: torch.Tensor, sigma: float, *, seed: int, step: int, keys: torch.Tensor) -> torch.Tensor:
    """Like `inject_noise`, but row i's noise depends only on (seed, step, keys[i]).

    Use the sample's dataset index as its key: the same sample at the same step then gets the
    same noise whatever the process count, micro-batch split or order within the batch.
    """
    _check_emb(emb)
    sigma = _check_sigma(sigma)
    if not isinstance(keys, torch.Tensor) or keys.shape != (emb.shape[0],):
        got = tuple(keys.shape) if isinstance(keys, torch.Tensor) else type(keys).__name__
        raise NoiseError(f"keys must have shape ({emb.shape[0]},) to match emb, got {got}")
    unit = l2_normalize(emb)  # (B, D)
    if sigma == 0.0:
        return unit
    eps = keyed_gaussian_noise(unit.shape[1], sigma, seed=seed, step=step, keys=keys, dtype=unit.dtype)  # (B, D)
    return l2_normalize(unit + eps)


# --------------------------------------------------------------------------------------------
# sigma estimation

SIGMA_RULES: tuple[str, ...] = get_args(SigmaRule)  # the names live in mats.config


def estimate_sigma(audio_emb: torch.Tensor, text_emb: torch.Tensor, rule: SigmaRule = "mean_linf") -> float:
    """Noise variance from a few (~30) paired audio/text embeddings.

    The rule (Deshmukh et al., "Training audio captioning models without audio", ICASSP 2024,
    following CapDec, Nukrai et al. 2022): set the noise variance from the infinity norm of the
    difference between paired embeddings. CapDec states it as "we set eps [the noise variance]
    to the mean l_inf norm of embedding differences" (quoted in github.com/DavidHuji/CapDec
    issue #3); Deshmukh et al. apply it to CLAP audio/text pairs. Both sides are L2-normalised
    first (the noise is added to unit vectors):

        d_i = || a_i/|a_i| - t_i/|t_i| ||_inf           for each pair i
        rule "mean_linf"          (default, literal):  sigma = mean_i d_i
        rule "mean_linf_squared"  (d_i read as a std): sigma = mean_i d_i ** 2

    The full text of Deshmukh et al. could not be read from this environment, so the literal
    CapDec wording is the default; "mean_linf_squared" is the alternative reading in which the
    l_inf distance is a standard deviation.

        rule "gap_energy"  (ours):  sigma = mean_i || a_i - t_i ||^2 / D

    gives noise of the same expected energy as the measured gap (E||eps||^2 = D sigma =
    E||a - t||^2). For mini-CLAP it gives a sigma several times below the paper's 0.015 (tuned
    for MS-CLAP), which puts a noise larger than the unit signal itself on mini-CLAP's 256-d
    embeddings; at that level MATS-mini learned to ignore its input for the first few hundred
    steps. The l_inf rules give larger values still. (MATS-mini trained better still without
    noise; configs/mats-mini.yaml says why.) Figures: docs/experiments.md, "Noise: sigma and the
    modality gap". Returns a Python float (a variance).
    """
    _check_emb(audio_emb, "audio_emb")
    _check_emb(text_emb, "text_emb")
    if audio_emb.shape != text_emb.shape:
        raise NoiseError(
            f"audio_emb {tuple(audio_emb.shape)} and text_emb {tuple(text_emb.shape)} must "
            "have the same shape (N paired rows, same dimension)"
        )
    if audio_emb.shape[0] < 2:
        raise NoiseError(f"need at least 2 pairs to estimate sigma, got {audio_emb.shape[0]}")
    if not (torch.isfinite(audio_emb).all() and torch.isfinite(text_emb).all()):
        raise NoiseError("embeddings contain NaN or inf")
    a = l2_normalize(audio_emb.double())  # (N, D)
    t = l2_normalize(text_emb.double())  # (N, D)
    linf = (a - t).abs().amax(dim=-1)  # (N,)
    if rule == "mean_linf":
        return float(linf.mean())
    if rule == "mean_linf_squared":
        return float((linf**2).mean())
    if rule == "gap_energy":
        return float(((a - t) ** 2).sum(dim=-1).mean() / a.shape[1])
    raise NoiseError(f"unknown sigma rule {rule!r}; use one of {', '.join(SIGMA_RULES)}")
