"""`mats report`: the verdict rules, the spec, and a whole report on a tiny SoundWorld (built
once), its cache (a re-run does no evaluation work; an interrupted run redoes only what is
missing) and the reproducibility of a cell through the `mats eval` code path."""

import shutil
from pathlib import Path

import pytest
import yaml

from mats_lab.report import report as R
from mats_lab.report.report import Cell, ReportError, Stat

MISSING = [t for t in ("apt-get", "dpkg-deb", "fluidsynth", "espeak-ng") if shutil.which(t) is None]
PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ rules, from numbers


def test_stat_mean_and_sample_std():
    s = Stat([0.2, 0.4, 0.6])
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(0.2) and s.n == 3
    assert s.fmt() == "0.400 ± 0.200" and Stat([0.25]).fmt() == "0.250"
    assert Stat([0.1, None]).fmt() == "n/a" and Stat([0.1, None]).mean is None


def test_k_sweep_switches_k_means_on_for_a_model_that_skips_it():
    assert R.sweep_overrides("k", 10, "no_kmeans") == {"k": 10, "mode": "full"}
    assert R.sweep_overrides("k", 10, "full") == {"k": 10}
    assert R.sweep_overrides("lam", 0.3, "no_kmeans") == {"lam": 0.3}


def test_comparison_rules():
    assert R.greater(Stat([0.5, 0.52, 0.48]), Stat([0.3, 0.31, 0.29])) is True
    assert R.greater(Stat([0.5, 0.6, 0.4]), Stat([0.45, 0.46, 0.44])) is False  # within spread
    assert R.greater(Stat([0.5]), Stat([0.49])) is True  # one seed: plain >
    assert R.greater(Stat([None]), Stat([0.1])) is None
    assert R.collapses(Stat([0.3]), Stat([0.6]), 0.75) is True
    assert R.collapses(Stat([0.5]), Stat([0.6]), 0.75) is False
    assert R.collapses(Stat([0.0]), Stat([0.0]), 0.75) is False  # nothing to collapse from
    assert R.on_par(Stat([0.55]), Stat([0.6]), 0.1) is True
    assert R.on_par(Stat([0.5]), Stat([0.6]), 0.1) is False
    assert [R.verdict(c) for c in ([True, True], [True, False], [False, None])] == [
        "reproduces", "partly", "does not reproduce"]
    assert R.verdict([None]).startswith("not run")


def _cells(**by_variant):
    return {k: {b: Cell(Stat(v), [], task, metric) for b, (task, metric, v) in benches.items()}
            for k, benches in by_variant.items()}


def test_findings_are_computed_from_the_numbers():
    cap, cls = "soundworld-sound-caption", "soundworld-sound-cls"

    def bench(caption_values, cls_values):
        return {cap: ("sound_caption", "CIDEr-D", caption_values),
                cls: ("classification", "accuracy", cls_values)}

    ablation = _cells(
        full=bench([0.5, 0.52, 0.48], [0.6, 0.6, 0.6]),
        no_kmeans=bench([0.49, 0.5, 0.5], [0.6, 0.6, 0.6]),
        noise_only=bench([0.3, 0.31, 0.29], [0.4, 0.4, 0.4]),  # Santa better on both
        memory_only=bench([0.1, 0.1, 0.1], [0.7, 0.7, 0.7]),  # worse on captions, better on cls
        no_noise=bench([0.49], [0.59]),  # no collapse
    )
    table = {cls: {R.ROW_TEXT: {"accuracy": Cell(Stat([0.6]), [], "classification", "accuracy")},
                   R.ROW_AUDIO: {"accuracy": Cell(Stat([0.62]), [], "classification", "accuracy")}}}
    got = {f.claim: f for f in R.findings(ablation, table, R.FindingsSpec())}
    assert got["Santa > noise only"].verdict == "reproduces"
    assert got["Santa > memory only"].verdict == "partly"
    assert got["training without noise collapses"].verdict == "does not reproduce"
    assert got["memory only collapses"].verdict == "partly"
    assert got["text-only ≈ audio-supervised"].verdict == "reproduces"
    assert "0.500 ± 0.020" in " ".join(got["Santa > noise only"].evidence)
    strict = R.findings(ablation, table, R.FindingsSpec(parity_tolerance=0.0))
    assert strict[-1].verdict == "does not reproduce"
    no_models = {k: v for k, v in ablation.items() if k != "no_noise"}
    assert R.findings(no_models, {}, R.FindingsSpec())[2].verdict.startswith("not run")


def test_spec_is_checked(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"models": {"text": "runs/a", "sigma": {0.015: "runs/a"}},
                                    "limit": {"default": 5, "soundworld-mcq": 2}}))
    spec = R.load_spec(path, out=tmp_path / "o")
    assert spec.models.text == ["runs/a"] and spec.models.sigma == {0.015: ["runs/a"]}
    assert spec.limit_for("soundworld-mcq") == 2 and spec.limit_for("soundworld-aqa-open") == 5
    assert spec.out == str(tmp_path / "o") and spec.cache_dir == tmp_path / "o" / "cache"
    for bad, message in (({"models": {"text": []}}, "at least one"),
                         ({"models": {"text": "a"}, "limt": 3}, "limt"),
                         ({"models": {"text": "a"}, "limit": 0}, "limit")):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ReportError, match=message):
            R.load_spec(path)
    path.write_text(yaml.safe_dump({"models": {"text": str(tmp_path / "nope")}}))
    with pytest.raises(ReportError, match="nope"):
        R.Report(R.load_spec(path))


# ------------------------------------------------------------------ a whole report


def _fake_caption_metrics(predictions, references, spice_jars=None):
    """Java-free stand-in for pycocoevalcap (seconds per call): word overlap with the references."""
    overlap = [len(set(p.lower().split()) & {w for r in refs for w in r.lower().split()})
               / max(1, len(p.split())) for p, refs in zip(predictions, references)]
    score = sum(overlap) / len(overlap)
    out = {f"BLEU-{k}": score / k for k in range(1, 5)}
    out.update({"METEOR": score / 2, "ROUGE-L": score, "CIDEr-D": 2 * score, "SPICE": None,
                "SPIDEr": None, "unavailable": ["SPICE", "SPIDEr"], "n": len(predictions)})
    return out


@pytest.fixture(scope="module")
def built(trained_tiny, tmp_path_factory):
    if MISSING:
        pytest.skip(f"SoundWorld needs Debian tools {MISSING}")
    from mats_lab.soundworld import build

    root = tmp_path_factory.mktemp("report")
    build("tiny", root / "sw", progress=False)
    seed1 = root / "seed1"
    shutil.copytree(trained_tiny, seed1)  # same weights: same cache entries, a second "seed"
    spec = R.ReportSpec(
        models=R.ModelsSpec(text=[str(trained_tiny), str(seed1)], audio=[str(seed1)],
                            no_noise=[str(trained_tiny)], sigma={0.015: [str(trained_tiny)]}),
        data=str(root / "sw"), out=str(root / "out"), limit=2,
        sweeps=R.SweepSpec(benches=["soundworld-sound-cls"], lam=[0.0, 1.0], tau=[0.1, 1.0],
                           top_l=[1, 4], k=[2, 3]),
        gap=R.GapSpec(benches=["soundworld-sound-caption", "soundworld-sound-cls"], limit=3),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mats.evaluate.metrics.caption_metrics", _fake_caption_metrics)
        report = R.Report(spec, progress=False)
        readme = report.build()
        yield spec, report, readme, mp


def test_report_writes_every_table_figure_and_finding(built):
    spec, report, readme, _ = built
    text = readme.read_text()
    for heading in ("## Findings", "## Table 1", "## Table 2", "## Table 8", "## Sweeps",
                    "### lambda", "### tau", "### L", "### K", "### sigma (training)",
                    "## The modality gap", "## Setup"):
        assert heading in text, heading
    for claim in ("Santa > noise only", "Santa > memory only", "training without noise collapses",
                  "memory only collapses", "text-only ≈ audio-supervised"):
        line = next(l for l in text.splitlines() if l.startswith(f"- **{claim}:"))
        assert any(f": {v}.**" in line for v in R.VERDICTS), line
    for name in ("gap.png", "sweeps.png", "ablation.png"):
        assert (Path(spec.out) / name).read_bytes()[:8] == PNG
        assert f"]({name})" in text
    assert "| soundworld-sound-cls | classification | 2 |" in text  # the limit is recorded
    assert "--santa mode=memory_only" in text and "--zero-shot" in text and "--santa k=2" in text
    assert "| Full Santa | 2 |" in text  # two text-only seeds in the row


def test_a_cell_is_recomputed_by_the_mats_eval_path(built):
    from mats import api
    from mats.evaluate.ablations import apply_overrides, parse_overrides
    from mats.evaluate.runner import evaluate

    spec, report, readme, _ = built
    job = next(j for j in report.wanted
               if j.bench == "soundworld-sound-cls" and j.ov == {"mode": "memory_only"})
    assert report.command(job) in readme.read_text()
    # What `mats eval --model M --bench B --limit 2 --santa mode=memory_only --json` runs:
    model = apply_overrides(api.load(job.model), parse_overrides(["mode=memory_only"]))
    again = evaluate(model, job.bench, limit=2, data=spec.data, progress=False)
    assert again == report.cached(job)["result"]


def test_cached_rerun_does_no_evaluation_work(built):
    spec, report, readme, mp = built
    first = readme.read_text()

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached re-run must not load or evaluate")

    mp.setattr("mats.api.load", forbidden)
    mp.setattr("mats.evaluate.runner.evaluate", forbidden)
    mp.setattr("mats_lab.report.gap.compute_gap", forbidden)
    again = R.Report(spec, progress=False)
    assert again.build().read_text() == first and again.computed == []
    mp.undo()
    mp.setattr("mats.evaluate.metrics.caption_metrics", _fake_caption_metrics)


def test_interrupted_run_redoes_only_what_is_missing(built):
    spec, report, readme, _ = built
    first = readme.read_text()
    lost = next(j for j in report.wanted if j.bench == "soundworld-mcq" and not j.ov)
    (report.entry(lost) / "result.json").unlink()  # as if killed during this evaluation
    again = R.Report(spec, progress=False)
    setup = "## Setup"  # holds wall times, which differ for the redone evaluation
    assert again.build().read_text().split(setup)[0] == first.split(setup)[0]
    # One evaluation (the copied "seed" shares the entry: computed once, under either name).
    assert [again.entry(j) for j in again.computed] == [report.entry(lost)]


def test_ablation_models_replace_the_text_models_in_table_8(built, tmp_path):
    import dataclasses

    spec, report, _, _ = built
    other = spec.models.audio[0]  # any model other than text[0]; same weights, so cached
    spec2 = dataclasses.replace(spec, out=str(tmp_path / "out"),
                                models=dataclasses.replace(spec.models, ablation=[other]))
    again = R.Report(spec2, progress=False)
    text = again.build().read_text()
    santa_models = {j.model for j in again.wanted if j.ov.get("mode") in {"no_kmeans", "memory_only"}}
    assert santa_models == {other}  # the Santa variants ran on the ablation models only
    note = next(l for l in text.splitlines() if l.startswith("The first four rows"))
    assert f"(`{other}`, trained with sigma = " in note and spec.models.text[0] not in note


def test_the_shipped_report_spec_is_valid():
    spec = R.load_spec(Path(__file__).resolve().parents[3] / "configs" / "report" / "mats-mini.yaml")
    assert spec.out == "docs/results" and spec.models.text and spec.models.audio
    names = {Path(m).parent.name for ms in (spec.models.text, spec.models.audio, spec.models.ablation,
                                             spec.models.no_noise,
                                             *spec.models.sigma.values()) for m in ms}
    script = (Path(__file__).resolve().parents[3] / "scripts" / "train_report_models.py").read_text()
    assert all(n in {"mats", "mats-audio"} or f'"{n}"' in script for n in names)
