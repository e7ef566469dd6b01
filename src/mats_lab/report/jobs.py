"""The report's evaluations: jobs, their cache and running the missing ones.

Every number in a table is one `evaluate(...)` call on (model, benchmark, overrides, limit) and
is re-computed by the `mats eval` command printed beside it (ablations.apply_overrides is the one
code path for both). Results are cached per call under CACHE/evals/<key>/ (predictions.jsonl,
metrics.json, result.json — the last written last, so an interrupted call is simply redone); the
key hashes the model's files, the benchmark file, the limit and the overrides. The modality gap
is cached the same way under CACHE/gap/. A re-run loads no model and evaluates nothing that is
cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mats.cache import hash_file
from mats.config import load_model_config
from mats.evaluate.ablations import AblationError, drop_defaults, overrides_flags
from mats.evaluate.benchmarks import (
    SOUNDWORLD_BENCHMARKS,
    BenchmarkError,
    benchmark_path,
    load_benchmark,
    parse_spec,
)
from mats.evaluate.metrics import find_spice_jars
from mats_lab.report.spec import ReportError, ReportSpec, check_spec


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


def write_json(path: Path, doc: Any) -> None:
    """Write then rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


class Evaluations:
    """The evaluations one spec needs: registered as the tables ask for them (`job`), run when
    missing from the cache (`run`), read back from it (`cached`, `value`)."""

    def __init__(self, spec: ReportSpec, progress: bool = True) -> None:
        from mats.api import resolve_model_path

        self.spec = check_spec(spec)
        self.progress = progress
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
        for name in spec.models.all():
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
                raise ReportError(f"benchmark {bench!r} mixes tasks {tasks}; a report needs one task per benchmark")
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
        return {
            "model": self.fingerprint(job.model),
            "bench": job.bench,
            "bench_file": self.bench_fingerprint(job.bench),
            "limit": self.spec.limit_for(job.bench),
            "overrides": job.ov,
            "spice": self.spice is not None,
        }

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

    def value(self, job: Job, metric: str) -> float | None:
        """The job's cached metric (None: not run, failed, or the metric is unavailable)."""
        doc = self.cached(job)
        if doc is None or doc["result"] is None:
            return None
        v = doc["result"]["metrics"].get(self.task(job.bench), {}).get(metric)
        return float(v) if isinstance(v, (int, float)) else None

    def command(self, job: Job) -> str:
        """The `mats eval` call that re-computes this job's numbers."""
        env = [f"MATS_DATA={shlex.quote(self.spec.data)}"]
        if self.spice:
            env.append(f"MATS_SPICE_JARS={shlex.quote(self.spice)}")
        parts = [*env, "mats eval", "--model", shlex.quote(job.model), "--bench", shlex.quote(job.bench)]
        limit = self.spec.limit_for(job.bench)
        if limit is not None:
            parts += ["--limit", str(limit)]
        flags = overrides_flags(job.ov)
        if flags:
            parts.append(flags)
        return " ".join(parts + ["--json"])

    # ---------------------------------------------------------------- running

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
        bar = tqdm(total=len(missing), desc="report evaluations", unit="eval", disable=not self.progress)
        try:
            for model, variants in by_model.items():
                bar.set_postfix_str(f"loading {model}")
                t0 = time.perf_counter()
                pipe = api.load(model)
                load_s = time.perf_counter() - t0
                if model == self.spec.models.text[0]:
                    self.gap(pipe)  # while it is loaded; the build then reads the gap cache
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
                result = runner.evaluate(
                    variant,
                    job.bench,
                    out_dir=entry,
                    limit=self.spec.limit_for(job.bench),
                    progress=self.progress,
                    spice_jars=self.spice,
                    data=self.spec.data,
                )
            except AblationError as err:  # e.g. a variant that cannot do the task
                error = str(err)
        doc = {
            "key": self.key(job),
            "model_dir": job.model,
            "result": result,
            "error": error,
            "seconds": round(time.perf_counter() - t0, 3),
            "load_seconds": round(load_s, 3),
        }
        write_json(entry / "result.json", doc)
        # What a read of the file gives (JSON types, sorted keys), without reading it.
        self._docs[entry] = json.loads(json.dumps(doc, sort_keys=True))
        self.computed.append(job)

    def gap(self, pipe: Any = None) -> dict[str, Any]:
        """Gap numbers and 2-D points for the first text-only model (cached like evaluations);
        `pipe`: that model already loaded (else it is loaded here if the gap is not cached)."""
        from mats import api
        from mats_lab.report.gap import PROMPT, compute_gap

        g = self.spec.gap
        model = self.spec.models.text[0]
        # The prompt pairs classification clips with text, so a new prompt is a new gap.
        key = {
            "model": self.fingerprint(model),
            "seed": g.seed,
            "limit": g.limit,
            "benches": {b: self.bench_fingerprint(b) for b in g.benches},
            "prompt": PROMPT,
        }
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
        doc.update(key=key, model_dir=model, benches=list(g.benches), seconds=round(time.perf_counter() - t0, 3))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, doc)
        return doc
