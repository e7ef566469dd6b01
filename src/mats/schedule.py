"""The learning-rate schedule every trainer here uses: linear warm-up, then a decay. Pure.

    lr_at(step, warmup=100, total=1000, decay="cosine")            # a factor for LambdaLR
    lr_at(step, warmup=100, total=1000, decay="cosine", peak=2e-3)  # the learning rate itself

Warm-up: step s < warmup gives peak * (s + 1) / warmup, so the first step already moves.
Decay over the steps warmup .. total (progress p from 0 to 1, held at 1 after `total`):
cosine peak * 0.5 * (1 + cos(pi p)), linear peak * (1 - p), constant peak; with `floor`, the
decay ends at floor * peak instead of 0. The expressions are written in the order each former
copy of this schedule evaluated them, so every caller's learning rates are bit for bit what they
were (tests/test_schedule.py checks it against those copies).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Decay = Literal["linear", "cosine", "constant"]


def lr_at(step: int, warmup: int, total: int, decay: Decay = "cosine", floor: float = 0.0, peak: float = 1.0) -> float:
    """The learning rate (or with peak=1, its factor) at 0-based `step` of a `total`-step run."""
    if step < warmup:
        return peak * (step + 1) / max(1, warmup)
    if decay == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "cosine":
        return floor * peak + peak * (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if decay == "linear":
        return floor * peak + peak * (1.0 - floor) * (1.0 - progress)
    raise ValueError(f"unknown learning-rate decay {decay!r}; use one of {', '.join(get_args(Decay))}")
