"""The report as Markdown: one function per section, each returning its lines; numbers come
from the tables (tables.collect), the gap document and the evaluation cache, labels and the
paper's figures from the spec."""

from __future__ import annotations

from typing import Any

import yaml

from mats.config import to_dict
from mats.evaluate.ablations import ZERO_SHOT_PROMPT
from mats_lab.report.findings import findings
from mats_lab.report.gap import PANELS, PROMPT
from mats_lab.report.jobs import Evaluations
from mats_lab.report.tables import (
    ABLATIONS,
    CAPTION_METRICS,
    MAIN_METRIC,
    PARAM_LABEL,
    Cell,
    main_rows,
)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _field(cell: Cell) -> str:
    return f'metrics.{cell.task}["{cell.metric}"]'


def commands(evals: Evaluations, cells: list[tuple[str, Cell | None]]) -> list[str]:
    """The example command (the first cell) and, folded, one command per evaluation."""
    cells = [(label, c) for label, c in cells if c is not None and c.jobs]
    if not cells:
        return []
    label, first = cells[0]
    lines = [
        "",
        f"Re-compute a cell: e.g. {label}, first model —",
        "",
        "```sh",
        evals.command(first.jobs[0]),
        "```",
        f"then read `{_field(first)}` from the JSON (a ± cell is the mean and sample std of one such call per model).",
        "",
        "<details><summary>every evaluation behind this table</summary>",
        "",
        "```sh",
    ]
    seen: dict[str, tuple[str, str, list[str]]] = {}  # command -> (row, task, metrics)
    for label, c in cells:
        for j in c.jobs:
            row, task, metrics = seen.setdefault(evals.command(j), (label, c.task, []))
            if c.metric not in metrics:
                metrics.append(c.metric)
    for cmd, (label, task, metrics) in seen.items():
        fields = f'metrics.{task}["{metrics[0]}"]' if len(metrics) == 1 else f"metrics.{task}: {', '.join(metrics)}"
        lines += [f"# {label}: {fields}", cmd]
    return lines + ["```", "", "</details>", ""]


def header() -> list[str]:
    return [
        "# MATS on SoundWorld: results",
        "",
        "Written by `mats report` (src/mats_lab/report/) from the spec below; "
        "do not edit by hand. Numbers are fractions (accuracy) or caption-metric "
        "scores; `a ± b` is the mean and sample standard deviation over the n "
        "models (training seeds) of a row; `n/a`: not available; `—`: the row cannot "
        "do the task.",
        "",
    ]


def findings_section(evals: Evaluations, data: dict) -> list[str]:
    """First: what the reader came for."""
    spec = evals.spec
    lines = ["## Findings (the paper's claims, judged from the numbers below)", ""]
    for f in findings(data["ablation"], {**data["table1"], **data["table2"]}, spec.findings, spec.paper):
        lines.append(
            f"- **{f.claim}: {f.verdict}.** " + "; ".join(f.evidence or ["no numbers"]) + f". _Rule: {f.rule}._"
        )
    return lines + [""]


def table1_section(evals: Evaluations, t1: dict) -> list[str]:
    lines = ["## Table 1: classification and question answering", ""]
    if not t1:
        return lines + ["No classification or QA benchmark in the spec.", ""]
    labels = evals.spec.rows
    header = ["Model", "n"] + [f"{b} ({MAIN_METRIC[evals.task(b)]})" for b in t1]
    rows, cells = [], []
    for role, models, _ in main_rows(evals):
        label = getattr(labels, role)
        row = [label, str(len(models))]
        for b in t1:
            c = next(iter(t1[b][role].values()))
            row.append("—" if c is None else c.stat.fmt())
            cells.append((f"{label}, {b}", c))
        rows.append(row)
    lines += md_table(header, rows)
    lines += [
        "",
        f"{labels.clap}: the encoder alone, the label whose text "
        f'("{ZERO_SHOT_PROMPT}"; MCQ: the option text) is most cosine-similar to the '
        "audio wins; it cannot answer open or yes/no questions.",
    ]
    return lines + commands(evals, cells)


def table2_section(evals: Evaluations, t2: dict) -> list[str]:
    lines = ["## Table 2: captioning", ""]
    if not t2:
        return lines + ["No captioning benchmark in the spec.", ""]
    rows, cells = [], []
    for b, by_row in t2.items():
        for role, metrics in by_row.items():
            if all(c is None for c in metrics.values()):
                continue
            label = getattr(evals.spec.rows, role)
            models = next(c for c in metrics.values() if c is not None).stat.n
            rows.append([b, label, str(models)] + [c.stat.fmt() for c in metrics.values()])
            cells += [(f"{label}, {b}", c) for c in metrics.values()]
    lines += md_table(["Benchmark", "Model", "n", *CAPTION_METRICS], rows)
    spice = (
        "SPICE and SPIDEr need the Stanford CoreNLP 3.6.0 jars, which are not "
        "installed here (`spice_jars` in the spec / MATS_SPICE_JARS): reported n/a, "
        "never estimated."
        if not evals.spice
        else f"SPICE from the CoreNLP jars in {evals.spice}."
    )
    lines += [
        "",
        f"CIDEr-D's idf comes from the evaluated set, so it depends on the item limit (recorded below). {spice}",
    ]
    return lines + commands(evals, cells)


def table8_section(evals: Evaluations, abl: dict, figures: dict[str, str]) -> list[str]:
    spec = evals.spec
    paper = spec.paper
    benches = spec.ablation_benches
    rows, cells = [], []
    for key, label, _ in ABLATIONS:
        row_cells = [abl[key][b] for b in benches]
        n = next((c.stat.n for c in row_cells if c is not None), 0)
        rows.append(
            [label, str(n)]
            + ["not run (no models)" if c is None else c.stat.fmt() for c in row_cells]
            + ([f"{paper.table8[key]:.3f}"] if paper.table8 else [])
        )
        cells += [(f"{label}, {b}", c) for b, c in zip(benches, row_cells)]
    header = (
        ["Variant", "n"]
        + [f"{b} ({MAIN_METRIC[evals.task(b)]})" for b in benches]
        + ([f"paper ({paper.table8_metric})"] if paper.table8 else [])
    )
    lines = ["## Table 8: Santa ablation", ""] + md_table(header, rows)
    if "ablation" in figures:
        lines += ["", f"![ablation]({figures['ablation']})"]
    abl_models = spec.models.ablation_models()
    lines += [
        "",
        f"The first four rows are the same text-only models "
        f"({', '.join(f'`{x}`' for x in abl_models)}, trained with sigma = "
        f"{evals.model_cfg(abl_models[0]).noise.sigma:g}) at inference (`--santa mode=...`); "
        "the last is separately trained with sigma = 0 and run with full Santa."
        + (" The paper column is for context only." if paper.table8 else ""),
    ]
    return lines + commands(evals, cells)


def sweeps_section(evals: Evaluations, sw: dict, figures: dict[str, str]) -> list[str]:
    spec = evals.spec
    lines = ["## Sweeps (paper Fig. S5, Tables S14-S19)", ""]
    if "sweeps" in figures:
        lines += [f"![sweeps]({figures['sweeps']})", ""]
    sweep_models = spec.models.text[: spec.sweeps.seeds]
    lines += [
        f"lambda, tau, L and K vary at inference on the text-only model(s) "
        f"{', '.join(f'`{m}`' for m in sweep_models)} (K re-clusters the same noisy memory "
        "with the model's k-means seed; the entries are not re-noised; on a model that skips "
        "k-means, the K rows run full Santa); sigma compares separately trained models. `*` "
        "marks the model's own value.",
        "",
    ]
    for param, s in sw.items():
        benches = list(s["cells"])
        header = [PARAM_LABEL[param], "n"] + [f"{b} ({s['cells'][b][0].metric})" for b in benches]
        rows, cells = [], []
        for i, v in enumerate(s["values"]):
            mark = " *" if float(v) == float(s["default"]) else ""
            first = s["cells"][benches[0]][i] if benches else None
            rows.append(
                [f"{v}{mark}", str(first.stat.n if first else 0)] + [s["cells"][b][i].stat.fmt() for b in benches]
            )
            cells += [(f"{PARAM_LABEL[param]} = {v}, {b}", s["cells"][b][i]) for b in benches]
        lines += [f"### {PARAM_LABEL[param]}", ""] + md_table(header, rows)
        lines += commands(evals, cells)
    return lines


def gap_section(evals: Evaluations, gap: dict, figures: dict[str, str]) -> list[str]:
    lines = [
        "## The modality gap (paper Fig. 3)",
        "",
        f"![modality gap]({figures['gap']})",
        "",
        f"{gap['n']} clips of {', '.join(gap['benches'])} (first "
        f"{evals.spec.gap.limit or 'all'} rows each), model `{gap['model_dir']}`: each clip's "
        "audio embedding is paired with the text embedding of its first caption "
        f'(classification: "{PROMPT}"). CLAP + noise: the text side noised as in training '
        f"(sigma = {gap['sigma']}, seed {gap['seed']}). Memory only / Santa: the audio side "
        "replaced by Santa's output in that mode. One PCA is fitted on all points of all "
        "panels, so the panels share axes.",
        "",
    ]
    rows = [
        [name, f"{num['centroid_distance']:.4f}", f"{num['paired_cosine']:.4f}", str(num["n"])]
        for name in PANELS
        if (num := gap["numbers"].get(name))
    ]
    lines += md_table(["Panel", "centroid distance", "mean paired cosine", "n"], rows)
    return lines + [
        "",
        "centroid distance = ‖mean(audio) − mean(text)‖ of L2-normalised "
        "embeddings; mean paired cosine = mean cos(audio_i, text_i) "
        "(`mats.santa.modality_gap`). These numbers come from "
        "`mats_lab.report.gap.compute_gap(mats.load(MODEL), rows, seed)`, not from "
        "`mats eval`.",
        "",
    ]


def setup_section(evals: Evaluations, gap: dict) -> list[str]:
    """Data, cache, limits, wall times, evaluations that failed, and the spec itself."""
    spec = evals.spec
    lines = [
        "## Setup",
        "",
        f"- SoundWorld data: `{spec.data}`",
        f"- Evaluation cache: `{evals.cache}` (per evaluation: predictions.jsonl, metrics.json, result.json)",
        "- Items evaluated per benchmark (`--limit`; the first N rows in file order):",
        "",
    ]
    all_benches = list(dict.fromkeys(spec.benches + spec.ablation_benches + spec.sweeps.benches))
    secs: dict[str, list[float]] = {}
    loads: list[float] = []
    for j in evals.wanted:
        doc = evals.cached(j)
        if doc:
            secs.setdefault(j.bench, []).append(doc["seconds"])
            if doc.get("load_seconds"):
                loads.append(doc["load_seconds"])
    rows = []
    for b in all_benches:
        t = secs.get(b, [])
        rows.append(
            [b, evals.task(b), str(spec.limit_for(b) or "all"), str(len(t)), f"{sum(t) / len(t):.1f}" if t else "n/a"]
        )
    lines += md_table(["Benchmark", "task", "limit", "evaluations", "mean s / evaluation"], rows)
    errors = [(j, doc["error"]) for j in evals.wanted if (doc := evals.cached(j)) and doc.get("error")]
    if errors:
        lines += ["", "Evaluations that could not run (their cells read n/a):", ""]
        lines += [f"- `{evals.command(j)}`: {err}" for j, err in errors]
    total = sum(sum(v) for v in secs.values()) + sum(loads)
    return lines + [
        "",
        f"- Wall time when computed: {total / 60:.1f} min in {sum(map(len, secs.values()))} "
        f"evaluations and {len(loads)} model loads (mean load {sum(loads) / max(1, len(loads)):.1f} s); "
        f"gap {gap.get('seconds', 0):.1f} s.",
        "- Determinism: greedy decoding, fixed Santa memory (seeded k-means, noise drawn once at "
        "build), deterministic audio windows, seeded gap noise: the same call gives the same "
        "numbers.",
        "",
        "Spec:",
        "",
        "```yaml",
        yaml.safe_dump(to_dict(spec), sort_keys=False).rstrip(),
        "```",
        "",
    ]


def render_markdown(evals: Evaluations, data: dict[str, Any], gap: dict, figures: dict[str, str]) -> str:
    """The whole README: data from tables.collect, gap from Evaluations.gap, figure file names."""
    return "\n".join(
        header()
        + findings_section(evals, data)
        + table1_section(evals, data["table1"])
        + table2_section(evals, data["table2"])
        + table8_section(evals, data["ablation"], figures)
        + sweeps_section(evals, data["sweeps"], figures)
        + gap_section(evals, gap, figures)
        + setup_section(evals, gap)
    )
