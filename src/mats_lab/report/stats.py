"""The report's numbers over training seeds and the rules that judge the paper's claims from
them: pure functions of Stat (a metric's values over several models)."""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("reproduces", "partly", "does not reproduce")  # what verdict() says of run claims


@dataclass
class Stat:
    """One table cell: a metric over several models (seeds). Unavailable if any value is."""

    values: list[float | None]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def ok(self) -> bool:
        return bool(self.values) and all(v is not None for v in self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.ok else None

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for one value."""
        if not self.ok or self.n < 2:
            return 0.0
        mu = self.mean
        return math.sqrt(sum((v - mu) ** 2 for v in self.values) / (self.n - 1))

    def fmt(self) -> str:
        if not self.ok:
            return "n/a"
        return f"{self.mean:.3f}" if self.n == 1 else f"{self.mean:.3f} ± {self.std:.3f}"


def greater(a: Stat, b: Stat) -> bool | None:
    """A > B: the difference of means exceeds the combined spread sqrt(sd_A^2 + sd_B^2)
    (with one seed each: plain mean(A) > mean(B)). None if either is unavailable."""
    if not (a.ok and b.ok):
        return None
    return a.mean - b.mean > math.sqrt(a.std**2 + b.std**2)


def collapses(x: Stat, full: Stat, ratio: float) -> bool | None:
    """X collapses: mean(X) < ratio * mean(full)."""
    if not (x.ok and full.ok):
        return None
    return x.mean < ratio * full.mean


def on_par(text: Stat, audio: Stat, tol: float) -> bool | None:
    """Text-only is on par with audio-supervised: mean(text) >= (1 - tol) * mean(audio)."""
    if not (text.ok and audio.ok):
        return None
    return text.mean >= (1.0 - tol) * audio.mean


def verdict(checks: list[bool | None]) -> str:
    """One claim's verdict from its checks (one per benchmark; None: no numbers)."""
    known = [c for c in checks if c is not None]
    if not known:
        return "not run (no numbers for it: models or benchmarks missing from the spec)"
    if all(known):
        return "reproduces"
    return "partly" if any(known) else "does not reproduce"
