"""`mats report`: the paper's tables, ablations, sweeps and modality-gap figure on SoundWorld.

    from mats_lab.report.report import run_report
    run_report("configs/report/mats-mini.yaml")     # -> docs/results/README.md + PNG figures

The modules, one job each: spec (the YAML spec and its checks), jobs (evaluations, their cache
and running the missing ones), tables (which evaluations each table needs, and its cells),
stats (mean and spread over seeds, the comparison rules), findings (the paper's claims judged
from the numbers), markdown (the README, one function per section), gap and plots (figures).

The report is built in two passes over the same table code: the first only collects the
evaluations the tables need, the missing ones run (one model load per model), and the second
fills the tables from the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mats_lab.report import tables
from mats_lab.report.jobs import Evaluations
from mats_lab.report.markdown import render_markdown
from mats_lab.report.spec import ReportSpec, load_spec


def build(evals: Evaluations) -> Path:
    """Run what the spec's tables need and write OUT/README.md and its figures."""
    tables.collect(evals)  # pass 1: which evaluations the tables need
    evals.run(list(evals.wanted))
    data = tables.collect(evals)  # pass 2: every cell from the cache
    gap = evals.gap()
    out = Path(evals.spec.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(evals, data, gap, out)
    (out / "README.md").write_text(render_markdown(evals, data, gap, figures))
    return out / "README.md"


def write_figures(evals: Evaluations, data: dict[str, Any], gap: dict, out: Path) -> dict[str, str]:
    """gap.png, sweeps.png and ablation.png in OUT; returns {figure: file name}."""
    from mats_lab.report import plots
    from mats_lab.report.gap import plot_gap

    spec = evals.spec
    figs = {"gap": plot_gap(gap, out / "gap.png").name}
    panels = []
    for param, sw in data["sweeps"].items():
        series = [
            plots.Series(
                f"{b} {cells[0].metric}",
                [float(v) for v in sw["values"]],
                [c.stat.mean for c in cells],
                [c.stat.std for c in cells],
            )
            for b, cells in sw["cells"].items()
        ]
        panels.append(plots.SweepPanel(tables.PARAM_LABEL[param], series, float(sw["default"])))
    if panels:
        figs["sweeps"] = plots.plot_sweeps(
            panels,
            out / "sweeps.png",
            f"Sweeps (text-only model{'s' if spec.sweeps.seeds > 1 else ''}; dashed: the model's own value)",
        ).name
    benches = spec.ablation_benches
    abl = data["ablation"]
    series = [
        plots.Series(
            label,
            [],
            [abl[k][b].stat.mean if abl[k][b] else None for b in benches],
            [abl[k][b].stat.std if abl[k][b] else 0.0 for b in benches],
        )
        for k, label, _ in tables.ABLATIONS
    ]
    if benches:
        groups = [f"{b}\n{tables.MAIN_METRIC[evals.task(b)]}" for b in benches]
        figs["ablation"] = plots.plot_bars(groups, series, out / "ablation.png", "Santa ablation (Table 8)").name
    return figs


def build_report(spec: ReportSpec, progress: bool = True) -> Path:
    """Write OUT/README.md and its figures; returns the README's path."""
    return build(Evaluations(spec, progress=progress))


def run_report(spec_path: str | Path, out: str | Path | None = None, progress: bool = True) -> Path:
    """`mats report SPEC [--out DIR]`."""
    return build_report(load_spec(spec_path, out), progress=progress)
