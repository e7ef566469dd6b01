"""`mats report`: the paper's tables, ablations, sweeps and modality-gap figure on SoundWorld.

    from mats_lab.report.report import load_spec, build_report
    build_report(load_spec("report.yaml"))          # -> docs/results/README.md + PNG figures

The spec (YAML; paths are relative to the working directory, unknown keys are errors):

    data: data/soundworld             # SoundWorld directory (holds bench/)
    out: docs/results                 # README.md and figures go here
    cache: null                       # evaluation cache; default OUT/cache
    models:
      text: [runs/mini-s0, runs/mini-s1, runs/mini-s2]        # MATS-mini, text-only, 3 seeds
      audio: [runs/audio-s0, runs/audio-s1, runs/audio-s2]    # MATS-Audio-mini
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

Every number in a table is one `evaluate(...)` call on (model, benchmark, overrides, limit) and
is re-computed by the `mats eval` command printed beside it (ablations.apply_overrides is the one
code path for both). Results are cached per call under CACHE/evals/<key>/ (predictions.jsonl,
metrics.json, result.json — the last written last, so an interrupted call is simply redone); the
key hashes the model's files, the benchmark file, the limit and the overrides. A re-run loads no
model and evaluates nothing that is cached.

The report is built in two passes over the same section code: the first only collects the
evaluations the tables need, the missing ones run (one model load per model), and the second
renders the tables from the cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from mats.cache import hash_file
from mats.config import ConfigError, from_dict, load_model_config, to_dict
from mats.evaluate.ablations import (
    ZERO_SHOT,
    ZERO_SHOT_PROMPT,
    AblationError,
    drop_defaults,
    overrides_flags,
)
from mats.evaluate.benchmarks import (
    SOUNDWORLD_BENCHMARKS,
    BenchmarkError,
    benchmark_path,
    load_benchmark,
    parse_spec,
)
from mats.evaluate.metrics import find_spice_jars

CAPTION_TASKS = ("sound_caption", "music_caption")
CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE", "SPIDEr")
MAIN_METRIC = {"classification": "accuracy", "aqa": "accuracy", "mcq": "accuracy",
               "sound_caption": "CIDEr-D", "music_caption": "CIDEr-D"}
ZERO_SHOT_TASKS = ("classification", "mcq")  # what the CLAP encoder alone can do

# Paper Table 8 (AudioCaps CIDEr), shown beside ours for context only; verdicts use our numbers.
PAPER_TABLE8 = {"full": 0.735, "no_kmeans": 0.703, "noise_only": 0.698, "memory_only": 0.343,
                "no_noise": 0.384}
ABLATIONS = (  # key, row label, overrides (None: the separately trained no-noise models)
    ("full", "Full Santa", {"mode": "full"}),
    ("no_kmeans", "without k-means (top-L over the whole memory)", {"mode": "no_kmeans"}),
    ("noise_only", "noise only (no memory)", {"mode": "noise_only"}),
    ("memory_only", "memory only (no audio embedding)", {"mode": "memory_only"}),
    ("no_noise", "trained without noise (sigma = 0)", None),
)
SWEEPS = ("lam", "tau", "top_l", "k")  # axis labels: PARAM_LABEL
ROW_CLAP, ROW_TEXT, ROW_AUDIO = "mini-CLAP zero-shot", "MATS-mini (text-only)", "MATS-Audio-mini (audio)"
VERDICTS = ("reproduces", "partly", "does not reproduce")


class ReportError(ValueError):
    """A report spec is invalid or names models / benchmarks that cannot be found."""


# --------------------------------------------------------------------------------------------
# the spec


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


@dataclass
class SweepSpec:
    benches: list[str] = field(default_factory=lambda: ["soundworld-sound-caption",
                                                        "soundworld-sound-cls"])
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
class ReportSpec:
    models: ModelsSpec = field(default_factory=ModelsSpec)
    data: str = "data/soundworld"
    out: str = "docs/results"
    cache: str | None = None
    benches: list[str] = field(default_factory=lambda: list(SOUNDWORLD_BENCHMARKS))
    ablation_benches: list[str] = field(default_factory=lambda: ["soundworld-sound-caption",
                                                                 "soundworld-sound-cls"])
    limit: int | dict[str, int] | None = 100
    sweeps: SweepSpec = field(default_factory=SweepSpec)
    gap: GapSpec = field(default_factory=GapSpec)
    findings: FindingsSpec = field(default_factory=FindingsSpec)
    spice_jars: str | None = None

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"

    def limit_for(self, bench: str) -> int | None:
        if isinstance(self.limit, dict):
            return self.limit.get(bench, self.limit.get("default"))
        return self.limit


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
    m.text, m.audio = _as_list(m.text, "models.text"), _as_list(m.audio, "models.audio")
    m.no_noise, m.clap = _as_list(m.no_noise, "models.no_noise"), _as_list(m.clap, "models.clap")
    m.ablation = _as_list(m.ablation, "models.ablation")
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
    return spec


def load_spec(path: str | Path, out: str | Path | None = None) -> ReportSpec:
    """Read a YAML spec; `out` (the CLI's --out) replaces the spec's output directory."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"report spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        spec = from_dict(ReportSpec, data)
    except yaml.YAMLError as err:
        raise ReportError(f"{path}: not valid YAML ({err})") from None
    except (ConfigError, TypeError) as err:
        raise ReportError(f"{path}: {err}") from None
    if out is not None:
        spec.out = str(out)
    return check_spec(spec)


# --------------------------------------------------------------------------------------------
# numbers: mean and spread over seeds


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


def sweep_overrides(param: str, value: Any, mode: str) -> dict[str, Any]:
    """The Santa overrides of one sweep point. K acts only where the memory is clustered, so on
    a model that skips k-means (mode no_kmeans) the K sweep also switches full Santa on."""
    if param == "k" and mode == "no_kmeans":
        return {"k": value, "mode": "full"}
    return {param: value}


def verdict(checks: list[bool | None]) -> str:
    known = [c for c in checks if c is not None]
    if not known:
        return "not run (no numbers for it: models or benchmarks missing from the spec)"
    if all(known):
        return "reproduces"
    return "partly" if any(known) else "does not reproduce"


# --------------------------------------------------------------------------------------------
# fingerprints and the cache


def model_fingerprint(model_dir: Path) -> str:
    """Content hash of what defines a trained model: config.json, the trained weights and the
    Santa memory in full; other files (exported encoder, bundled LM) by name and size."""
    h = hashlib.sha256()
    full = {"config.json", "model.safetensors", "santa.safetensors"}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir).as_posix()
        h.update(rel.encode() + b"\0")
        if rel in full:
            hash_file(path, h)
        else:
            h.update(str(path.stat().st_size).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Job:
    """One evaluation: a model directory (as the spec names it), a benchmark, overrides."""

    model: str
    bench: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def ov(self) -> dict[str, Any]:
        return dict(self.overrides)


def _write_json(path: Path, doc: Any) -> None:
    """Write then rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# the report


@dataclass
class Cell:
    stat: Stat
    jobs: list[Job]
    task: str | None = None
    metric: str | None = None


class Report:
    """Plans, runs (cached) and renders the report for one spec."""

    def __init__(self, spec: ReportSpec, progress: bool = True) -> None:
        from mats.api import resolve_model_path

        self.spec = check_spec(spec)
        self.progress = progress
        self.out = Path(spec.out)
        self.cache = spec.cache_dir
        self._dirs: dict[str, Path] = {}
        self._fp: dict[str, str] = {}
        self._cfg: dict[str, Any] = {}
        self._tasks: dict[str, str] = {}
        self._bench_fp: dict[str, str] = {}
        self._docs: dict[Path, dict[str, Any]] = {}  # cache entry -> its result.json, once found
        # SPICE runs when the jars are found (spec.spice_jars, else $MATS_SPICE_JARS), as in
        # `mats eval`; the command beside a table then names the same directory.
        found = find_spice_jars(spec.spice_jars)
        self.spice = str(found) if found else None
        self.wanted: dict[Job, None] = {}  # insertion-ordered set
        self.computed: list[Job] = []  # evaluations run by this call (not from the cache)
        m = spec.models
        for name in dict.fromkeys(m.text + m.audio + m.ablation + m.no_noise + m.clap +
                                  [d for v in m.sigma.values() for d in v]):
            try:
                self._dirs[name] = resolve_model_path(name)
            except Exception as err:  # ModelError: one clear line naming the directory
                raise ReportError(f"report spec: model {name!r}: {err}") from None

    # ---------------------------------------------------------------- model / bench facts

    def fingerprint(self, model: str) -> str:
        if model not in self._fp:
            self._fp[model] = model_fingerprint(self._dirs[model])
        return self._fp[model]

    def model_cfg(self, model: str):
        if model not in self._cfg:
            self._cfg[model] = load_model_config(self._dirs[model] / "config.json")
        return self._cfg[model]

    def task(self, bench: str) -> str:
        """The benchmark's task (benchmarks in a report must hold a single task)."""
        if bench not in self._tasks:
            try:
                _, rows = load_benchmark(bench, data=self.spec.data)
            except Exception as err:
                raise ReportError(f"report spec: benchmark {bench!r}: {err}") from None
            tasks = sorted({r["task"] for r in rows})
            if len(tasks) != 1:
                raise ReportError(f"benchmark {bench!r} mixes tasks {tasks}; a report needs one "
                                  "task per benchmark")
            self._tasks[bench] = tasks[0]
        return self._tasks[bench]

    def bench_fingerprint(self, bench: str) -> str:
        if bench not in self._bench_fp:
            if bench in SOUNDWORLD_BENCHMARKS:
                path = benchmark_path(bench, self.spec.data)
            else:
                try:
                    parsed = parse_spec(bench)  # KIND:METADATA@AUDIO_DIR: hash the metadata file
                except BenchmarkError as err:
                    raise ReportError(f"report spec: benchmark {bench!r}: {err}") from None
                path = parsed[1] if parsed else Path(bench)
            h = hashlib.sha256(bench.encode())
            if path.is_file():
                hash_file(path, h)
            self._bench_fp[bench] = h.hexdigest()
        return self._bench_fp[bench]

    # ---------------------------------------------------------------- jobs and the cache

    def job(self, model: str, bench: str, overrides: dict[str, Any] | None) -> Job:
        """The job, with overrides equal to the model's own settings left out (so one
        evaluation has one name), registered as wanted."""
        ov = drop_defaults(overrides or {}, self.model_cfg(model).santa)
        job = Job(model, bench, tuple(sorted(ov.items())))
        self.wanted.setdefault(job, None)
        return job

    def key(self, job: Job) -> dict[str, Any]:
        return {"model": self.fingerprint(job.model), "bench": job.bench,
                "bench_file": self.bench_fingerprint(job.bench),
                "limit": self.spec.limit_for(job.bench), "overrides": job.ov,
                "spice": self.spice is not None}

    def entry(self, job: Job) -> Path:
        digest = hashlib.sha256(json.dumps(self.key(job), sort_keys=True).encode()).hexdigest()
        return self.cache / "evals" / digest[:20]

    def cached(self, job: Job) -> dict[str, Any] | None:
        return self._cached_at(self.entry(job))

    def _cached_at(self, entry: Path) -> dict[str, Any] | None:
        """The entry's result.json (read once, then memoised; re-checked on disk until found)."""
        if entry not in self._docs:
            path = entry / "result.json"
            if not path.is_file():
                return None
            self._docs[entry] = json.loads(path.read_text())
        return self._docs[entry]

    def run(self, jobs: list[Job]) -> None:
        """Evaluate the jobs not in the cache: each model loaded once, each variant built once."""
        from mats import api
        from mats.evaluate import runner
        from mats.evaluate.ablations import apply_overrides

        # Jobs with one cache entry (the same model files under two names) run once.
        missing, entries = [], set()
        for j in jobs:
            e = self.entry(j)
            if e not in entries and self._cached_at(e) is None:
                entries.add(e)
                missing.append(j)
        if not missing:
            return
        by_model: dict[str, dict[tuple, list[Job]]] = {}
        for j in missing:
            by_model.setdefault(j.model, {}).setdefault(j.overrides, []).append(j)
        bar = tqdm(total=len(missing), desc="report evaluations", unit="eval",
                   disable=not self.progress)
        try:
            for model, variants in by_model.items():
                bar.set_postfix_str(f"loading {model}")
                t0 = time.perf_counter()
                pipe = api.load(model)
                load_s = time.perf_counter() - t0
                if model == self.spec.models.text[0]:
                    self.gap(pipe)  # while it is loaded; build() then reads the gap cache
                for overrides, group in variants.items():
                    variant, error = None, None
                    try:
                        variant = apply_overrides(pipe, dict(overrides))
                    except AblationError as err:  # e.g. a memory mode on a model without memory
                        error = str(err)
                    for j in group:
                        bar.set_postfix_str(f"{Path(model).name} {j.bench} {overrides_flags(j.ov)}")
                        self._run_one(j, variant, error, load_s, runner)
                        load_s = 0.0  # charged to the model's first evaluation only
                        bar.update(1)
        finally:
            bar.close()

    def _run_one(self, job: Job, variant: Any, error: str | None, load_s: float, runner) -> None:
        entry = self.entry(job)
        entry.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        result = None
        if error is None:
            try:
                result = runner.evaluate(variant, job.bench, out_dir=entry,
                                         limit=self.spec.limit_for(job.bench),
                                         progress=self.progress, spice_jars=self.spice,
                                         data=self.spec.data)
            except AblationError as err:  # e.g. a variant that cannot do the task
                error = str(err)
        doc = {"key": self.key(job), "model_dir": job.model, "result": result, "error": error,
               "seconds": round(time.perf_counter() - t0, 3), "load_seconds": round(load_s, 3)}
        _write_json(entry / "result.json", doc)
        # What a read of the file gives (JSON types, sorted keys), without reading it.
        self._docs[entry] = json.loads(json.dumps(doc, sort_keys=True))
        self.computed.append(job)

    # ---------------------------------------------------------------- cells

    def value(self, job: Job, metric: str) -> float | None:
        doc = self.cached(job)
        if doc is None or doc["result"] is None:
            return None
        v = doc["result"]["metrics"].get(self.task(job.bench), {}).get(metric)
        return float(v) if isinstance(v, (int, float)) else None

    def cell(self, models: list[str], bench: str, overrides: dict | None, metric: str) -> Cell:
        jobs = [self.job(m, bench, overrides) for m in models]
        return Cell(Stat([self.value(j, metric) for j in jobs]), jobs, self.task(bench), metric)

    def command(self, job: Job) -> str:
        """The `mats eval` call that re-computes this job's numbers."""
        env = [f"MATS_DATA={shlex.quote(self.spec.data)}"]
        if self.spice:
            env.append(f"MATS_SPICE_JARS={shlex.quote(self.spice)}")
        parts = [*env, "mats eval", "--model", shlex.quote(job.model), "--bench",
                 shlex.quote(job.bench)]
        limit = self.spec.limit_for(job.bench)
        if limit is not None:
            parts += ["--limit", str(limit)]
        flags = overrides_flags(job.ov)
        if flags:
            parts.append(flags)
        return " ".join(parts + ["--json"])

    # ---------------------------------------------------------------- sections (data only)

    def main_rows(self) -> list[tuple[str, list[str], dict]]:
        m = self.spec.models
        rows = [(ROW_CLAP, m.clap or m.text[:1], {ZERO_SHOT: True}), (ROW_TEXT, m.text, {})]
        if m.audio:
            rows.append((ROW_AUDIO, m.audio, {}))
        return rows

    def main_table(self, captions: bool) -> dict[str, dict[str, dict[str, Cell | None]]]:
        """bench -> row label -> metric -> Cell (None where the row cannot do the task)."""
        out: dict[str, dict[str, dict[str, Cell | None]]] = {}
        for bench in self.spec.benches:
            task = self.task(bench)
            if (task in CAPTION_TASKS) != captions:
                continue
            metrics = CAPTION_METRICS if captions else (MAIN_METRIC[task],)
            out[bench] = {}
            for label, models, ov in self.main_rows():
                zero_ok = not ov.get(ZERO_SHOT) or task in ZERO_SHOT_TASKS
                out[bench][label] = {mt: self.cell(models, bench, ov, mt) if zero_ok else None
                                     for mt in metrics}
        return out

    def ablation(self) -> dict[str, dict[str, Cell | None]]:
        """variant key -> bench -> Cell of the bench's main metric."""
        m = self.spec.models
        out: dict[str, dict[str, Cell | None]] = {}
        for key, _, ov in ABLATIONS:
            models, ov = (m.ablation_models(), ov) if ov is not None else (m.no_noise, {"mode": "full"})
            out[key] = {b: self.cell(models, b, ov, MAIN_METRIC[self.task(b)]) if models else None
                        for b in self.spec.ablation_benches}
        return out

    def sweeps(self) -> dict[str, dict[str, Any]]:
        """param -> {"values", "default", "cells": bench -> [Cell per value]}."""
        sw = self.spec.sweeps
        models = self.spec.models.text[: sw.seeds]
        santa = self.model_cfg(models[0]).santa
        out: dict[str, dict[str, Any]] = {}
        for param in SWEEPS:
            values = list(getattr(sw, param))
            if values:
                out[param] = {"values": values, "default": getattr(santa, param), "cells": {
                    b: [self.cell(models, b, sweep_overrides(param, v, santa.mode),
                                  MAIN_METRIC[self.task(b)]) for v in values]
                    for b in sw.benches}}
        sig = self.spec.models.sigma
        if sig:
            values = sorted(sig)
            out["sigma"] = {"values": values,
                            "default": self.model_cfg(self.spec.models.text[0]).noise.sigma,
                            "cells": {b: [self.cell(sig[v], b, {}, MAIN_METRIC[self.task(b)])
                                          for v in values] for b in sw.benches}}
        return out

    def collect(self) -> dict[str, Any]:
        return {"table1": self.main_table(captions=False), "table2": self.main_table(captions=True),
                "ablation": self.ablation(), "sweeps": self.sweeps()}

    # ---------------------------------------------------------------- the modality gap

    def gap(self, pipe: Any = None) -> dict[str, Any]:
        """Gap numbers and 2-D points for the first text-only model (cached like evaluations);
        `pipe`: that model already loaded (else it is loaded here if the gap is not cached)."""
        from mats import api
        from mats_lab.report.gap import compute_gap

        g = self.spec.gap
        model = self.spec.models.text[0]
        key = {"model": self.fingerprint(model), "seed": g.seed, "limit": g.limit,
               "benches": {b: self.bench_fingerprint(b) for b in g.benches}}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        path = self.cache / "gap" / f"{digest}.json"
        if path.is_file():
            return json.loads(path.read_text())
        rows = []
        for b in g.benches:
            _, r = load_benchmark(b, data=self.spec.data)
            rows += r[: g.limit] if g.limit else r
        t0 = time.perf_counter()
        if pipe is None:
            pipe = api.load(model)
        doc = compute_gap(pipe, rows, seed=g.seed, progress=self.progress)
        doc.update(key=key, model_dir=model, benches=list(g.benches),
                   seconds=round(time.perf_counter() - t0, 3))
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, doc)
        return doc

    # ---------------------------------------------------------------- build

    def build(self) -> Path:
        self.collect()  # pass 1: which evaluations the tables need
        self.run(list(self.wanted))
        data = self.collect()  # pass 2: every cell from the cache
        gap = self.gap()
        self.out.mkdir(parents=True, exist_ok=True)
        figures = self._figures(data, gap)
        text = render_markdown(self, data, gap, figures)
        (self.out / "README.md").write_text(text)
        return self.out / "README.md"

    def _figures(self, data: dict, gap: dict) -> dict[str, str]:
        from mats_lab.report import plots
        from mats_lab.report.gap import plot_gap

        figs = {"gap": plot_gap(gap, self.out / "gap.png").name}
        panels = []
        for param, sw in data["sweeps"].items():
            series = [plots.Series(f"{b} {cells[0].metric}", [float(v) for v in sw["values"]],
                                   [c.stat.mean for c in cells], [c.stat.std for c in cells])
                      for b, cells in sw["cells"].items()]
            panels.append(plots.SweepPanel(PARAM_LABEL[param], series, float(sw["default"])))
        if panels:
            figs["sweeps"] = plots.plot_sweeps(
                panels, self.out / "sweeps.png",
                f"Sweeps (text-only model{'s' if self.spec.sweeps.seeds > 1 else ''}; "
                "dashed: the model's own value)").name
        benches = self.spec.ablation_benches
        series = [plots.Series(label, [], [data["ablation"][k][b].stat.mean
                                           if data["ablation"][k][b] else None for b in benches],
                               [data["ablation"][k][b].stat.std if data["ablation"][k][b] else 0.0
                                for b in benches])
                  for k, label, _ in ABLATIONS]
        if benches:
            groups = [f"{b}\n{MAIN_METRIC[self.task(b)]}" for b in benches]
            figs["ablation"] = plots.plot_bars(groups, series, self.out / "ablation.png",
                                               "Santa ablation (Table 8)").name
        return figs


PARAM_LABEL = {"lam": "lambda", "tau": "tau", "top_l": "L", "k": "K", "sigma": "sigma (training)"}


# --------------------------------------------------------------------------------------------
# findings


@dataclass
class Finding:
    claim: str
    verdict: str
    evidence: list[str]
    rule: str


def _ab(a: str, sa: Stat, b: str, sb: Stat, ok: bool | None) -> str:
    mark = {True: "holds", False: "does not hold", None: "n/a"}[ok]
    return f"{a} {sa.fmt()} vs {b} {sb.fmt()} ({mark})"


def findings(ablation: dict[str, dict[str, Cell | None]], table: dict[str, dict[str, dict]],
             spec: FindingsSpec) -> list[Finding]:
    """The paper's five qualitative claims, judged from our numbers (rules in each Finding)."""
    def stats(key: str) -> dict[str, Stat]:
        return {b: c.stat for b, c in ablation.get(key, {}).items() if c is not None}

    full = stats("full")
    out = []
    for key, claim in (("noise_only", "Santa > noise only"), ("memory_only", "Santa > memory only")):
        other = stats(key)
        checks, ev = [], []
        for b, s in full.items():
            if b in other:
                ok = greater(s, other[b])
                checks.append(ok)
                ev.append(f"{b} {_metric_of(ablation, b)}: "
                          + _ab("Santa", s, key.replace("_", " "), other[b], ok))
        out.append(Finding(claim, verdict(checks), ev,
                           "holds on a metric when mean(Santa) - mean(other) exceeds "
                           "sqrt(sd_Santa^2 + sd_other^2) over the seeds (one seed: plain >); "
                           f"paper (AudioCaps CIDEr): Santa {PAPER_TABLE8['full']} vs "
                           f"{PAPER_TABLE8[key]}"))
    r = spec.collapse_ratio
    for key, claim in (("no_noise", "training without noise collapses"),
                       ("memory_only", "memory only collapses")):
        other = stats(key)
        checks, ev = [], []
        for b, s in full.items():
            if b in other:
                ok = collapses(other[b], s, r)
                checks.append(ok)
                ratio = (f"{other[b].mean / s.mean:.2f} of Santa" if ok is not None and s.mean
                         else "ratio undefined")
                mark = {True: "collapses", False: "does not collapse", None: "n/a"}[ok]
                ev.append(f"{b} {_metric_of(ablation, b)}: {key.replace('_', ' ')} "
                          f"{other[b].fmt()} vs Santa {s.fmt()} = {ratio} ({mark})")
        out.append(Finding(claim, verdict(checks), ev,
                           f"collapses on a metric when mean(variant) < {r} x mean(Santa); paper: "
                           f"{PAPER_TABLE8[key]} / {PAPER_TABLE8['full']} = "
                           f"{PAPER_TABLE8[key] / PAPER_TABLE8['full']:.2f}"))
    checks, ev = [], []
    tol = spec.parity_tolerance
    for bench, rows in table.items():
        text, audio = rows.get(ROW_TEXT, {}), rows.get(ROW_AUDIO, {})
        for metric, cell in text.items():
            if cell is None or metric != MAIN_METRIC[cell.task] or audio.get(metric) is None:
                continue
            ok = on_par(cell.stat, audio[metric].stat, tol)
            checks.append(ok)
            mark = {True: "on par", False: "behind", None: "n/a"}[ok]
            ev.append(f"{bench} {metric}: text-only {cell.stat.fmt()} vs audio-supervised "
                      f"{audio[metric].stat.fmt()} ({mark})")
    out.append(Finding("text-only ≈ audio-supervised", verdict(checks), ev,
                       f"on par on a metric when mean(text-only) >= {1 - tol:.2f} x "
                       "mean(audio-supervised); each benchmark's main metric "
                       "(accuracy; CIDEr-D for captions)"))
    return out


def _metric_of(ablation: dict, bench: str) -> str:
    for cells in ablation.values():
        if cells.get(bench) is not None:
            return cells[bench].metric
    return ""


# --------------------------------------------------------------------------------------------
# markdown


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _field(cell: Cell) -> str:
    return f'metrics.{cell.task}["{cell.metric}"]'


def _commands(report: Report, cells: list[tuple[str, Cell]]) -> list[str]:
    """The example command (the first cell) and, folded, one command per evaluation."""
    cells = [(label, c) for label, c in cells if c is not None and c.jobs]
    if not cells:
        return []
    label, first = cells[0]
    lines = ["", f"Re-compute a cell: e.g. {label}, first model —", "", "```sh",
             report.command(first.jobs[0]), "```", f"then read `{_field(first)}` from the JSON "
             "(a ± cell is the mean and sample std of one such call per model).", "",
             "<details><summary>every evaluation behind this table</summary>", "", "```sh"]
    seen: dict[str, tuple[str, str, list[str]]] = {}  # command -> (row, task, metrics)
    for label, c in cells:
        for j in c.jobs:
            row, task, metrics = seen.setdefault(report.command(j), (label, c.task, []))
            if c.metric not in metrics:
                metrics.append(c.metric)
    for cmd, (label, task, metrics) in seen.items():
        fields = (f'metrics.{task}["{metrics[0]}"]' if len(metrics) == 1
                  else f"metrics.{task}: {', '.join(metrics)}")
        lines += [f"# {label}: {fields}", cmd]
    return lines + ["```", "", "</details>", ""]


def render_markdown(report: Report, data: dict, gap: dict, figures: dict[str, str]) -> str:
    spec = report.spec
    L: list[str] = ["# MATS on SoundWorld: results", "",
                    "Written by `mats report` (src/mats_lab/report/) from the spec below; "
                    "do not edit by hand. Numbers are fractions (accuracy) or caption-metric "
                    "scores; `a ± b` is the mean and sample standard deviation over the n "
                    "models (training seeds) of a row; `n/a`: not available; `—`: the row cannot "
                    "do the task.", ""]

    # -- findings first: what the reader came for
    L += ["## Findings (the paper's claims, judged from the numbers below)", ""]
    fl = findings(data["ablation"], {**data["table1"], **data["table2"]}, spec.findings)
    for f in fl:
        L.append(f"- **{f.claim}: {f.verdict}.** " + "; ".join(f.evidence or ["no numbers"]) +
                 f". _Rule: {f.rule}._")
    L.append("")

    # -- Table 1
    t1 = data["table1"]
    L += ["## Table 1: classification and question answering", ""]
    if t1:
        rows_def = report.main_rows()
        header = ["Model", "n"] + [f"{b} ({MAIN_METRIC[report.task(b)]})" for b in t1]
        rows, cells = [], []
        for label, models, _ in rows_def:
            row = [label, str(len(models))]
            for b in t1:
                c = next(iter(t1[b][label].values()))
                row.append("—" if c is None else c.stat.fmt())
                cells.append((f"{label}, {b}", c))
            rows.append(row)
        L += _md_table(header, rows)
        L += ["", f"{ROW_CLAP}: the encoder alone, the label whose text "
              f"(\"{ZERO_SHOT_PROMPT}\"; MCQ: the option text) is most cosine-similar to the "
              "audio wins; it cannot answer open or yes/no questions."]
        L += _commands(report, cells)
    else:
        L += ["No classification or QA benchmark in the spec.", ""]

    # -- Table 2
    t2 = data["table2"]
    L += ["## Table 2: captioning", ""]
    if t2:
        rows, cells = [], []
        for b, by_row in t2.items():
            for label, metrics in by_row.items():
                if all(c is None for c in metrics.values()):
                    continue
                models = next(c for c in metrics.values() if c is not None).stat.n
                rows.append([b, label, str(models)] + [c.stat.fmt() for c in metrics.values()])
                cells += [(f"{label}, {b}", c) for c in metrics.values()]
        L += _md_table(["Benchmark", "Model", "n", *CAPTION_METRICS], rows)
        spice = ("SPICE and SPIDEr need the Stanford CoreNLP 3.6.0 jars, which are not "
                 "installed here (`spice_jars` in the spec / MATS_SPICE_JARS): reported n/a, "
                 "never estimated." if not report.spice else
                 f"SPICE from the CoreNLP jars in {report.spice}.")
        L += ["", "CIDEr-D's idf comes from the evaluated set, so it depends on the item limit "
              f"(recorded below). {spice}"]
        L += _commands(report, cells)
    else:
        L += ["No captioning benchmark in the spec.", ""]

    # -- Table 8
    L += ["## Table 8: Santa ablation", ""]
    abl = data["ablation"]
    benches = spec.ablation_benches
    rows, cells = [], []
    for key, label, _ in ABLATIONS:
        row_cells = [abl[key][b] for b in benches]
        n = next((c.stat.n for c in row_cells if c is not None), 0)
        rows.append([label, str(n)] + ["not run (no models)" if c is None else c.stat.fmt()
                                       for c in row_cells] + [f"{PAPER_TABLE8[key]:.3f}"])
        cells += [(f"{label}, {b}", c) for b, c in zip(benches, row_cells)]
    L += _md_table(["Variant", "n"] + [f"{b} ({MAIN_METRIC[report.task(b)]})" for b in benches]
                   + ["paper (AudioCaps CIDEr)"], rows)
    if "ablation" in figures:
        L += ["", f"![ablation]({figures['ablation']})"]
    abl_models = spec.models.ablation_models()
    L += ["", f"The first four rows are the same text-only models "
          f"({', '.join(f'`{x}`' for x in abl_models)}, trained with sigma = "
          f"{report.model_cfg(abl_models[0]).noise.sigma:g}) at inference (`--santa mode=...`); "
          "the last is separately trained with sigma = 0 and run with full Santa. The paper "
          "column is for context only."]
    L += _commands(report, cells)

    # -- sweeps
    L += ["## Sweeps (paper Fig. S5, Tables S14-S19)", ""]
    sw = data["sweeps"]
    if "sweeps" in figures:
        L += [f"![sweeps]({figures['sweeps']})", ""]
    sweep_models = spec.models.text[: spec.sweeps.seeds]
    L += [f"lambda, tau, L and K vary at inference on the text-only model(s) "
          f"{', '.join(f'`{m}`' for m in sweep_models)} (K re-clusters the same noisy memory "
          "with the model's k-means seed; the entries are not re-noised; on a model that skips "
          "k-means, the K rows run full Santa); sigma compares separately trained models. `*` "
          "marks the model's own value.", ""]
    for param, s in sw.items():
        benches_sw = list(s["cells"])
        header = [PARAM_LABEL[param], "n"] + [
            f"{b} ({s['cells'][b][0].metric})" for b in benches_sw]
        rows, cells = [], []
        for i, v in enumerate(s["values"]):
            mark = " *" if float(v) == float(s["default"]) else ""
            first = s["cells"][benches_sw[0]][i] if benches_sw else None
            rows.append([f"{v}{mark}", str(first.stat.n if first else 0)] +
                        [s["cells"][b][i].stat.fmt() for b in benches_sw])
            cells += [(f"{PARAM_LABEL[param]} = {v}, {b}", s["cells"][b][i]) for b in benches_sw]
        L += [f"### {PARAM_LABEL[param]}", ""] + _md_table(header, rows)
        L += _commands(report, cells)

    # -- gap
    L += ["## The modality gap (paper Fig. 3)", "",
          f"![modality gap]({figures['gap']})", "",
          f"{gap['n']} clips of {', '.join(gap['benches'])} (first {spec.gap.limit or 'all'} "
          f"rows each), model `{gap['model_dir']}`: each clip's audio embedding is paired with "
          "the text embedding of its first caption (classification: \"the sound of a {label}\"). "
          f"CLAP + noise: the text side noised as in training (sigma = {gap['sigma']}, seed "
          f"{gap['seed']}). Memory only / Santa: the audio side replaced by Santa's output in that "
          "mode. One PCA is fitted on all points of all panels, so the panels share axes.", ""]
    from mats_lab.report.gap import PANELS

    rows = [[name, f"{num['centroid_distance']:.4f}", f"{num['paired_cosine']:.4f}", str(num["n"])]
            for name in PANELS if (num := gap["numbers"].get(name))]
    L += _md_table(["Panel", "centroid distance", "mean paired cosine", "n"], rows)
    L += ["", "centroid distance = ‖mean(audio) − mean(text)‖ of L2-normalised embeddings; "
          "mean paired cosine = mean cos(audio_i, text_i) (`mats.santa.modality_gap`). These "
          "numbers come from `mats_lab.report.gap.compute_gap(mats.load(MODEL), rows, seed)`, not "
          "from `mats eval`.", ""]

    # -- setup
    L += ["## Setup", "", f"- SoundWorld data: `{spec.data}`",
          f"- Evaluation cache: `{report.cache}` (per evaluation: predictions.jsonl, "
          "metrics.json, result.json)", "- Items evaluated per benchmark (`--limit`; the first "
          "N rows in file order):", ""]
    all_benches = list(dict.fromkeys(spec.benches + spec.ablation_benches + spec.sweeps.benches))
    secs: dict[str, list[float]] = {}
    loads: list[float] = []
    for j in report.wanted:
        doc = report.cached(j)
        if doc:
            secs.setdefault(j.bench, []).append(doc["seconds"])
            if doc.get("load_seconds"):
                loads.append(doc["load_seconds"])
    rows = []
    for b in all_benches:
        t = secs.get(b, [])
        rows.append([b, report.task(b), str(spec.limit_for(b) or "all"), str(len(t)),
                     f"{sum(t) / len(t):.1f}" if t else "n/a"])
    L += _md_table(["Benchmark", "task", "limit", "evaluations", "mean s / evaluation"], rows)
    errors = [(j, doc["error"]) for j in report.wanted
              if (doc := report.cached(j)) and doc.get("error")]
    if errors:
        L += ["", "Evaluations that could not run (their cells read n/a):", ""]
        L += [f"- `{report.command(j)}`: {err}" for j, err in errors]
    total = sum(sum(v) for v in secs.values()) + sum(loads)
    L += ["", f"- Wall time when computed: {total / 60:.1f} min in {sum(map(len, secs.values()))} "
          f"evaluations and {len(loads)} model loads (mean load {sum(loads) / max(1, len(loads)):.1f} s); "
          f"gap {gap.get('seconds', 0):.1f} s.",
          "- Determinism: greedy decoding, fixed Santa memory (seeded k-means, noise drawn once at "
          "build), deterministic audio windows, seeded gap noise: the same call gives the same "
          "numbers.", "", "Spec:", "", "```yaml",
          yaml.safe_dump(to_dict(spec), sort_keys=False).rstrip(), "```", ""]
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# entry points


def build_report(spec: ReportSpec, progress: bool = True) -> Path:
    """Write OUT/README.md and its figures; returns the README's path."""
    return Report(spec, progress=progress).build()


def run_report(spec_path: str | Path, out: str | Path | None = None, progress: bool = True) -> Path:
    """`mats report SPEC [--out DIR]`."""
    return build_report(load_spec(spec_path, out), progress=progress)
