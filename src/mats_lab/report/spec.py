"""The report spec: which models and benchmarks `mats report` evaluates, how it judges the
paper's claims, how it labels its rows, and the paper's figures it shows beside ours.

YAML; paths are relative to the working directory, unknown keys are errors:

    data: data/soundworld             # SoundWorld directory (holds bench/)
    out: docs/results                 # README.md and figures go here
    cache: null                       # evaluation cache; default OUT/cache
    models:                           # one path or a list of paths (training seeds) each
      text: [runs/mini-s0, runs/mini-s1, runs/mini-s2]        # text-only, 3 seeds
      audio: [runs/audio-s0, runs/audio-s1, runs/audio-s2]    # audio-supervised
      ablation: []                    # Table 8's Santa variants run on these (default: text);
                                      # a spec whose text models train without noise names noised ones
      no_noise: [runs/nonoise-s0, runs/nonoise-s1, runs/nonoise-s2]   # trained with sigma = 0
      sigma: {0.0: [runs/nonoise-s0], 0.005: [runs/s005], 0.015: [runs/mini-s0]}
      clap: []                        # encoders for the zero-shot row; default: text[0]'s
    benches: [soundworld-sound-cls, ...]      # Tables 1 and 2 (default: all SoundWorld benches)
    ablation_benches: [soundworld-sound-caption, soundworld-sound-cls]
    limit: {default: 100, soundworld-sound-caption: 60}   # or one int, or null (everything)
    sweeps: {benches: [...], seeds: 1, lam: [...], tau: [...], top_l: [...], k: [...]}
    gap: {benches: [soundworld-sound-caption], limit: 200, seed: 0}
    findings: {collapse_ratio: 0.75, parity_tolerance: 0.1}
    spice_jars: null                  # CoreNLP jars for SPICE/SPIDEr (else reported unavailable)
    rows: {clap: CLAP zero-shot, text: MATS (text-only), audio: MATS-Audio (audio)}
    paper:                            # the paper's figures, for context (default: none shown)
      table8_metric: AudioCaps CIDEr
      table8: {full: 0.735, no_kmeans: 0.703, noise_only: 0.698, memory_only: 0.343, no_noise: 0.384}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mats.config import ConfigError, from_dict
from mats.evaluate.benchmarks import SOUNDWORLD_BENCHMARKS
from mats_lab.report.tables import ABLATIONS


class ReportError(ValueError):
    """A report spec is invalid or names models / benchmarks that cannot be found."""


@dataclass
class ModelsSpec:
    text: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    ablation: list[str] = field(default_factory=list)  # Table 8's Santa rows; empty: text
    no_noise: list[str] = field(default_factory=list)
    sigma: dict[float, list[str]] = field(default_factory=dict)
    clap: list[str] = field(default_factory=list)

    def ablation_models(self) -> list[str]:
        """The models Table 8's Santa variants run on: `ablation`, else the text-only models."""
        return self.ablation or self.text

    def all(self) -> list[str]:
        """Every model directory the spec names, once each, in spec order."""
        sigma = [d for v in self.sigma.values() for d in v]
        return list(dict.fromkeys(self.text + self.audio + self.ablation + self.no_noise + self.clap + sigma))


@dataclass
class SweepSpec:
    benches: list[str] = field(default_factory=lambda: ["soundworld-sound-caption", "soundworld-sound-cls"])
    seeds: int = 1  # the first N text-only models run the sweeps
    lam: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
    tau: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0])
    top_l: list[int] = field(default_factory=lambda: [1, 4, 8, 16, 32, 64])
    k: list[int] = field(default_factory=lambda: [1, 10, 50, 100, 200])


@dataclass
class GapSpec:
    benches: list[str] = field(default_factory=lambda: ["soundworld-sound-caption"])
    limit: int | None = 200  # rows per benchmark
    seed: int = 0  # the noise of the "CLAP + noise" panel


@dataclass
class FindingsSpec:
    collapse_ratio: float = 0.75  # "collapses": below this fraction of full Santa's score
    parity_tolerance: float = 0.1  # "text-only ~ audio": text >= (1 - tol) * audio


@dataclass
class RowsSpec:
    """The row labels of Tables 1 and 2: the models the spec names under these keys."""

    clap: str = "CLAP zero-shot"  # models.clap (else text[0]'s encoder) alone
    text: str = "MATS (text-only)"  # models.text
    audio: str = "MATS-Audio (audio)"  # models.audio


@dataclass
class PaperSpec:
    """The paper's own figures, printed beside ours for context; verdicts use our numbers only.
    Without them the paper column and the paper's ratios are left out."""

    table8_metric: str = ""  # what the paper's Table 8 measured, e.g. "AudioCaps CIDEr"
    table8: dict[str, float] = field(default_factory=dict)  # variant key (tables.ABLATIONS) -> figure


@dataclass
class ReportSpec:
    models: ModelsSpec = field(default_factory=ModelsSpec)
    data: str = "data/soundworld"
    out: str = "docs/results"
    cache: str | None = None
    benches: list[str] = field(default_factory=lambda: list(SOUNDWORLD_BENCHMARKS))
    ablation_benches: list[str] = field(default_factory=lambda: ["soundworld-sound-caption", "soundworld-sound-cls"])
    limit: int | dict[str, int] | None = 100
    sweeps: SweepSpec = field(default_factory=SweepSpec)
    gap: GapSpec = field(default_factory=GapSpec)
    findings: FindingsSpec = field(default_factory=FindingsSpec)
    spice_jars: str | None = None
    rows: RowsSpec = field(default_factory=RowsSpec)
    paper: PaperSpec = field(default_factory=PaperSpec)

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"

    def limit_for(self, bench: str) -> int | None:
        if isinstance(self.limit, dict):
            return self.limit.get(bench, self.limit.get("default"))
        return self.limit


MODEL_LISTS = ("text", "audio", "ablation", "no_noise", "clap")  # ModelsSpec's lists of paths


def _as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError(f"report spec {where}: expected a path or a list of paths, got {value!r}")
    return list(value)


def check_spec(spec: ReportSpec) -> ReportSpec:
    """Normalise (a single path -> a list; sigma keys -> float) and validate a spec."""
    m = spec.models
    for name in MODEL_LISTS:
        setattr(m, name, _as_list(getattr(m, name), f"models.{name}"))
    try:
        m.sigma = {float(k): _as_list(v, f"models.sigma.{k}") for k, v in (m.sigma or {}).items()}
    except (TypeError, ValueError):
        raise ReportError(f"report spec models.sigma: keys must be numbers, got {list(m.sigma)}") from None
    if not m.text:
        raise ReportError("report spec models.text: at least one text-only model directory is needed")
    lim = spec.limit
    limits = lim.values() if isinstance(lim, dict) else [lim]
    if not all(v is None or (isinstance(v, int) and v >= 1) for v in limits):
        raise ReportError(f"report spec limit: positive integers or null, got {lim!r}")
    if spec.sweeps.seeds < 1:
        raise ReportError(f"report spec sweeps.seeds must be >= 1, got {spec.sweeps.seeds}")
    f = spec.findings
    if not 0 < f.collapse_ratio <= 1 or not 0 <= f.parity_tolerance < 1:
        raise ReportError("report spec findings: collapse_ratio in (0, 1], parity_tolerance in [0, 1)")
    variants = [key for key, _, _ in ABLATIONS]
    if spec.paper.table8 and sorted(spec.paper.table8) != sorted(variants):
        raise ReportError(
            f"report spec paper.table8: one figure for each of {variants} (or none), got {sorted(spec.paper.table8)}"
        )
    return spec


def _paths_as_lists(data: dict[str, Any]) -> dict[str, Any]:
    """A spec may name one model as a plain path; the dataclass holds lists, so a single path
    becomes a one-element list before the typed load."""
    models = data.get("models")
    if not isinstance(models, dict):
        return data
    models = {k: [v] if k in MODEL_LISTS and isinstance(v, str) else v for k, v in models.items()}
    if isinstance(models.get("sigma"), dict):
        models["sigma"] = {k: [v] if isinstance(v, str) else v for k, v in models["sigma"].items()}
    return {**data, "models": models}


def load_spec(path: str | Path, out: str | Path | None = None) -> ReportSpec:
    """Read a YAML spec; `out` (the CLI's --out) replaces the spec's output directory."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"report spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ReportError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: top level must be a mapping")
    try:
        spec = from_dict(ReportSpec, _paths_as_lists(data))
    except (ConfigError, TypeError) as err:
        raise ReportError(f"{path}: {err}") from None
    if out is not None:
        spec.out = str(out)
    return check_spec(spec)
