"""The paper's five qualitative claims, judged from the report's numbers (each Finding says its
rule). The paper's own figures (spec `paper:`) are quoted in the rules for context only."""

from __future__ import annotations

from dataclasses import dataclass

from mats_lab.report.spec import FindingsSpec, PaperSpec
from mats_lab.report.stats import Stat, collapses, greater, on_par, verdict
from mats_lab.report.tables import MAIN_METRIC, Cell


@dataclass
class Finding:
    claim: str
    verdict: str
    evidence: list[str]
    rule: str


def _ab(a: str, sa: Stat, b: str, sb: Stat, ok: bool | None) -> str:
    mark = {True: "holds", False: "does not hold", None: "n/a"}[ok]
    return f"{a} {sa.fmt()} vs {b} {sb.fmt()} ({mark})"


def _metric_of(ablation: dict, bench: str) -> str:
    for cells in ablation.values():
        if cells.get(bench) is not None:
            return cells[bench].metric
    return ""


def findings(
    ablation: dict[str, dict[str, Cell | None]],
    table: dict[str, dict[str, dict]],
    rules: FindingsSpec,
    paper: PaperSpec | None = None,
) -> list[Finding]:
    """ablation: tables.ablation(); table: Tables 1 and 2 merged (bench -> row role -> metric
    -> Cell)."""
    p = (paper or PaperSpec()).table8

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
                ev.append(f"{b} {_metric_of(ablation, b)}: " + _ab("Santa", s, key.replace("_", " "), other[b], ok))
        rule = (
            "holds on a metric when mean(Santa) - mean(other) exceeds sqrt(sd_Santa^2 + "
            "sd_other^2) over the seeds (one seed: plain >)"
        )
        if p:
            rule += f"; paper ({paper.table8_metric}): Santa {p['full']} vs {p[key]}"
        out.append(Finding(claim, verdict(checks), ev, rule))
    r = rules.collapse_ratio
    for key, claim in (("no_noise", "training without noise collapses"), ("memory_only", "memory only collapses")):
        other = stats(key)
        checks, ev = [], []
        for b, s in full.items():
            if b in other:
                ok = collapses(other[b], s, r)
                checks.append(ok)
                ratio = f"{other[b].mean / s.mean:.2f} of Santa" if ok is not None and s.mean else "ratio undefined"
                mark = {True: "collapses", False: "does not collapse", None: "n/a"}[ok]
                ev.append(
                    f"{b} {_metric_of(ablation, b)}: {key.replace('_', ' ')} "
                    f"{other[b].fmt()} vs Santa {s.fmt()} = {ratio} ({mark})"
                )
        rule = f"collapses on a metric when mean(variant) < {r} x mean(Santa)"
        if p:
            rule += f"; paper: {p[key]} / {p['full']} = {p[key] / p['full']:.2f}"
        out.append(Finding(claim, verdict(checks), ev, rule))
    checks, ev = [], []
    tol = rules.parity_tolerance
    for bench, rows in table.items():
        text, audio = rows.get("text", {}), rows.get("audio", {})
        for metric, c in text.items():
            if c is None or metric != MAIN_METRIC[c.task] or audio.get(metric) is None:
                continue
            ok = on_par(c.stat, audio[metric].stat, tol)
            checks.append(ok)
            mark = {True: "on par", False: "behind", None: "n/a"}[ok]
            ev.append(
                f"{bench} {metric}: text-only {c.stat.fmt()} vs audio-supervised {audio[metric].stat.fmt()} ({mark})"
            )
    out.append(
        Finding(
            "text-only ≈ audio-supervised",
            verdict(checks),
            ev,
            f"on par on a metric when mean(text-only) >= {1 - tol:.2f} x "
            "mean(audio-supervised); each benchmark's main metric "
            "(accuracy; CIDEr-D for captions)",
        )
    )
    return out
