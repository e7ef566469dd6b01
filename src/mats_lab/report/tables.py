"""The report's tables as data: which evaluations each cell needs and its numbers.

Each function takes the Evaluations of a spec, registers the jobs its cells need (the first
pass of a build) and reads their numbers from the cache (the second pass): the same code plans
and fills a table. Rows of Tables 1 and 2 are keyed by role ("clap", "text", "audio"); their
labels come from the spec (`rows:`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mats.evaluate.ablations import ZERO_SHOT
from mats_lab.report.stats import Stat

if TYPE_CHECKING:
    from mats_lab.report.jobs import Evaluations, Job

CAPTION_TASKS = ("sound_caption", "music_caption")
CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE", "SPIDEr")
MAIN_METRIC = {
    "classification": "accuracy",
    "aqa": "accuracy",
    "mcq": "accuracy",
    "sound_caption": "CIDEr-D",
    "music_caption": "CIDEr-D",
}
ZERO_SHOT_TASKS = ("classification", "mcq")  # what the CLAP encoder alone can do

ABLATIONS = (  # key, row label, overrides (None: the separately trained no-noise models)
    ("full", "Full Santa", {"mode": "full"}),
    ("no_kmeans", "without k-means (top-L over the whole memory)", {"mode": "no_kmeans"}),
    ("noise_only", "noise only (no memory)", {"mode": "noise_only"}),
    ("memory_only", "memory only (no audio embedding)", {"mode": "memory_only"}),
    ("no_noise", "trained without noise (sigma = 0)", None),
)
SWEEPS = ("lam", "tau", "top_l", "k")  # Santa's inference settings, swept on one model
PARAM_LABEL = {"lam": "lambda", "tau": "tau", "top_l": "L", "k": "K", "sigma": "sigma (training)"}


@dataclass
class Cell:
    stat: Stat
    jobs: list[Job]
    task: str | None = None
    metric: str | None = None


def cell(evals: Evaluations, models: list[str], bench: str, overrides: dict | None, metric: str) -> Cell:
    jobs = [evals.job(m, bench, overrides) for m in models]
    return Cell(Stat([evals.value(j, metric) for j in jobs]), jobs, evals.task(bench), metric)


def sweep_overrides(param: str, value: Any, mode: str) -> dict[str, Any]:
    """The Santa overrides of one sweep point. K acts only where the memory is clustered, so on
    a model that skips k-means (mode no_kmeans) the K sweep also switches full Santa on."""
    if param == "k" and mode == "no_kmeans":
        return {"k": value, "mode": "full"}
    return {param: value}


def main_rows(evals: Evaluations) -> list[tuple[str, list[str], dict]]:
    """Tables 1 and 2's rows: (role, models, overrides)."""
    m = evals.spec.models
    rows = [("clap", m.clap or m.text[:1], {ZERO_SHOT: True}), ("text", m.text, {})]
    if m.audio:
        rows.append(("audio", m.audio, {}))
    return rows


def main_table(evals: Evaluations, captions: bool) -> dict[str, dict[str, dict[str, Cell | None]]]:
    """bench -> row role -> metric -> Cell (None where the row cannot do the task)."""
    out: dict[str, dict[str, dict[str, Cell | None]]] = {}
    for bench in evals.spec.benches:
        task = evals.task(bench)
        if (task in CAPTION_TASKS) != captions:
            continue
        metrics = CAPTION_METRICS if captions else (MAIN_METRIC[task],)
        out[bench] = {}
        for role, models, ov in main_rows(evals):
            zero_ok = not ov.get(ZERO_SHOT) or task in ZERO_SHOT_TASKS
            out[bench][role] = {mt: cell(evals, models, bench, ov, mt) if zero_ok else None for mt in metrics}
    return out


def ablation(evals: Evaluations) -> dict[str, dict[str, Cell | None]]:
    """Table 8: variant key -> bench -> Cell of the bench's main metric."""
    m = evals.spec.models
    out: dict[str, dict[str, Cell | None]] = {}
    for key, _, ov in ABLATIONS:
        models, ov = (m.ablation_models(), ov) if ov is not None else (m.no_noise, {"mode": "full"})
        out[key] = {
            b: cell(evals, models, b, ov, MAIN_METRIC[evals.task(b)]) if models else None
            for b in evals.spec.ablation_benches
        }
    return out


def sweeps(evals: Evaluations) -> dict[str, dict[str, Any]]:
    """param -> {"values", "default", "cells": bench -> [Cell per value]}."""
    spec = evals.spec
    sw = spec.sweeps
    models = spec.models.text[: sw.seeds]
    santa = evals.model_cfg(models[0]).santa
    out: dict[str, dict[str, Any]] = {}
    for param in SWEEPS:
        values = list(getattr(sw, param))
        if values:
            out[param] = {
                "values": values,
                "default": getattr(santa, param),
                "cells": {
                    b: [
                        cell(evals, models, b, sweep_overrides(param, v, santa.mode), MAIN_METRIC[evals.task(b)])
                        for v in values
                    ]
                    for b in sw.benches
                },
            }
    sig = spec.models.sigma
    if sig:
        values = sorted(sig)
        out["sigma"] = {
            "values": values,
            "default": evals.model_cfg(spec.models.text[0]).noise.sigma,
            "cells": {b: [cell(evals, sig[v], b, {}, MAIN_METRIC[evals.task(b)]) for v in values] for b in sw.benches},
        }
    return out


def collect(evals: Evaluations) -> dict[str, Any]:
    """Every table: {"table1", "table2", "ablation", "sweeps"}."""
    return {
        "table1": main_table(evals, captions=False),
        "table2": main_table(evals, captions=True),
        "ablation": ablation(evals),
        "sweeps": sweeps(evals),
    }
