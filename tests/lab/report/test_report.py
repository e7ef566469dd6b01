"""`mats report`: a whole report on a tiny SoundWorld (built once), its cache (a re-run does no
evaluation work; an interrupted run redoes only what is missing), the reproducibility of a cell
through the `mats eval` code path, and labels and paper figures taken from the spec."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from mats_lab.report.jobs import Evaluations
from mats_lab.report.report import build
from mats_lab.report.spec import GapSpec, ModelsSpec, PaperSpec, ReportSpec, RowsSpec, SweepSpec
from mats_lab.report.stats import VERDICTS

MISSING = [t for t in ("apt-get", "dpkg-deb", "fluidsynth", "espeak-ng") if shutil.which(t) is None]
PNG = b"\x89PNG\r\n\x1a\n"
PAPER = PaperSpec(
    "AudioCaps CIDEr", {"full": 0.735, "no_kmeans": 0.703, "noise_only": 0.698, "memory_only": 0.343, "no_noise": 0.384}
)


def _fake_caption_metrics(predictions, references, spice_jars=None):
    """Java-free stand-in for pycocoevalcap (seconds per call): word overlap with the references."""
    overlap = [
        len(set(p.lower().split()) & {w for r in refs for w in r.lower().split()}) / max(1, len(p.split()))
        for p, refs in zip(predictions, references)
    ]
    score = sum(overlap) / len(overlap)
    out = {f"BLEU-{k}": score / k for k in range(1, 5)}
    out.update(
        {
            "METEOR": score / 2,
            "ROUGE-L": score,
            "CIDEr-D": 2 * score,
            "SPICE": None,
            "SPIDEr": None,
            "unavailable": ["SPICE", "SPIDEr"],
            "n": len(predictions),
        }
    )
    return out


@pytest.fixture(scope="module")
def built(trained_tiny, tmp_path_factory):
    if MISSING:
        pytest.skip(f"SoundWorld needs Debian tools {MISSING}")
    from mats_lab.soundworld import build as build_soundworld

    root = tmp_path_factory.mktemp("report")
    build_soundworld("tiny", root / "sw", progress=False)
    seed1 = root / "seed1"
    shutil.copytree(trained_tiny, seed1)  # same weights: same cache entries, a second "seed"
    spec = ReportSpec(
        models=ModelsSpec(
            text=[str(trained_tiny), str(seed1)],
            audio=[str(seed1)],
            no_noise=[str(trained_tiny)],
            sigma={0.015: [str(trained_tiny)]},
        ),
        data=str(root / "sw"),
        out=str(root / "out"),
        limit=2,
        sweeps=SweepSpec(benches=["soundworld-sound-cls"], lam=[0.0, 1.0], tau=[0.1, 1.0], top_l=[1, 4], k=[2, 3]),
        gap=GapSpec(benches=["soundworld-sound-caption", "soundworld-sound-cls"], limit=3),
        rows=RowsSpec(clap="Z-CLAP", text="T-model (text-only)", audio="A-model (audio)"),
        paper=PAPER,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mats.evaluate.metrics.caption_metrics", _fake_caption_metrics)
        evals = Evaluations(spec, progress=False)
        readme = build(evals)
        yield spec, evals, readme, mp


def test_report_writes_every_table_figure_and_finding(built):
    spec, evals, readme, _ = built
    text = readme.read_text()
    for heading in (
        "## Findings",
        "## Table 1",
        "## Table 2",
        "## Table 8",
        "## Sweeps",
        "### lambda",
        "### tau",
        "### L",
        "### K",
        "### sigma (training)",
        "## The modality gap",
        "## Setup",
    ):
        assert heading in text, heading
    for claim in (
        "Santa > noise only",
        "Santa > memory only",
        "training without noise collapses",
        "memory only collapses",
        "text-only ≈ audio-supervised",
    ):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"- **{claim}:"))
        assert any(f": {v}.**" in line for v in VERDICTS), line
    for name in ("gap.png", "sweeps.png", "ablation.png"):
        assert (Path(spec.out) / name).read_bytes()[:8] == PNG
        assert f"]({name})" in text
    assert "| soundworld-sound-cls | classification | 2 |" in text  # the limit is recorded
    assert "--santa mode=memory_only" in text and "--zero-shot" in text and "--santa k=2" in text
    assert "| Full Santa | 2 |" in text  # two text-only seeds in the row


def test_row_labels_and_paper_figures_come_from_the_spec(built):
    from mats_lab.report.gap import PROMPT

    _, _, readme, _ = built
    text = readme.read_text()
    assert "| Z-CLAP | 1 |" in text and "| T-model (text-only) | 2 |" in text
    assert "| soundworld-sound-caption | A-model (audio) | 1 |" in text
    assert "paper (AudioCaps CIDEr) |" in text and text.count("| 0.735 |") == 1
    assert "Santa 0.735 vs 0.698" in text and "The paper column is for context only." in text
    assert f'(classification: "{PROMPT}")' in text  # the gap's pairing prompt, not a copy


def test_a_cell_is_recomputed_by_the_mats_eval_path(built):
    from mats import api
    from mats.evaluate.ablations import apply_overrides, parse_overrides
    from mats.evaluate.runner import evaluate

    spec, evals, readme, _ = built
    job = next(j for j in evals.wanted if j.bench == "soundworld-sound-cls" and j.ov == {"mode": "memory_only"})
    assert evals.command(job) in readme.read_text()
    # What `mats eval --model M --bench B --limit 2 --santa mode=memory_only --json` runs:
    model = apply_overrides(api.load(job.model), parse_overrides(["mode=memory_only"]))
    again = evaluate(model, job.bench, limit=2, data=spec.data, progress=False)
    assert again == evals.cached(job)["result"]


def test_cached_rerun_does_no_evaluation_work(built):
    spec, evals, readme, mp = built
    first = readme.read_text()

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached re-run must not load or evaluate")

    mp.setattr("mats.api.load", forbidden)
    mp.setattr("mats.evaluate.runner.evaluate", forbidden)
    mp.setattr("mats_lab.report.gap.compute_gap", forbidden)
    again = Evaluations(spec, progress=False)
    assert build(again).read_text() == first and again.computed == []
    mp.undo()
    mp.setattr("mats.evaluate.metrics.caption_metrics", _fake_caption_metrics)


def test_interrupted_run_redoes_only_what_is_missing(built):
    spec, evals, readme, _ = built
    first = readme.read_text()
    lost = next(j for j in evals.wanted if j.bench == "soundworld-mcq" and not j.ov)
    (evals.entry(lost) / "result.json").unlink()  # as if killed during this evaluation
    again = Evaluations(spec, progress=False)
    setup = "## Setup"  # holds wall times, which differ for the redone evaluation
    assert build(again).read_text().split(setup)[0] == first.split(setup)[0]
    # One evaluation (the copied "seed" shares the entry: computed once, under either name).
    assert [again.entry(j) for j in again.computed] == [evals.entry(lost)]


def test_ablation_models_replace_the_text_models_in_table_8(built, tmp_path):
    spec, _, _, _ = built
    other = spec.models.audio[0]  # any model other than text[0]; same weights, so cached
    spec2 = dataclasses.replace(
        spec,
        out=str(tmp_path / "out"),
        cache=str(spec.cache_dir),
        paper=PaperSpec(),
        models=dataclasses.replace(spec.models, ablation=[other]),
    )
    again = Evaluations(spec2, progress=False)
    text = build(again).read_text()
    santa_models = {j.model for j in again.wanted if j.ov.get("mode") in {"no_kmeans", "memory_only"}}
    assert santa_models == {other}  # the Santa variants ran on the ablation models only
    note = next(ln for ln in text.splitlines() if ln.startswith("The first four rows"))
    assert f"(`{other}`, trained with sigma = " in note and spec.models.text[0] not in note
    assert "paper" not in note and "| paper (" not in text  # no paper figures in this spec
