"""The paper's claims judged from the numbers; the paper's own figures only in the rules."""

from mats_lab.report.findings import findings
from mats_lab.report.spec import FindingsSpec, PaperSpec
from mats_lab.report.stats import Stat
from mats_lab.report.tables import Cell

CAP, CLS = "soundworld-sound-caption", "soundworld-sound-cls"
PAPER = PaperSpec(
    "AudioCaps CIDEr", {"full": 0.735, "no_kmeans": 0.703, "noise_only": 0.698, "memory_only": 0.343, "no_noise": 0.384}
)


def _cells(**by_variant):
    return {
        k: {b: Cell(Stat(v), [], task, metric) for b, (task, metric, v) in benches.items()}
        for k, benches in by_variant.items()
    }


def _bench(caption_values, cls_values):
    return {CAP: ("sound_caption", "CIDEr-D", caption_values), CLS: ("classification", "accuracy", cls_values)}


ABLATION = _cells(
    full=_bench([0.5, 0.52, 0.48], [0.6, 0.6, 0.6]),
    no_kmeans=_bench([0.49, 0.5, 0.5], [0.6, 0.6, 0.6]),
    noise_only=_bench([0.3, 0.31, 0.29], [0.4, 0.4, 0.4]),  # Santa better on both
    memory_only=_bench([0.1, 0.1, 0.1], [0.7, 0.7, 0.7]),  # worse on captions, better on cls
    no_noise=_bench([0.49], [0.59]),  # no collapse
)
TABLE = {
    CLS: {
        "text": {"accuracy": Cell(Stat([0.6]), [], "classification", "accuracy")},
        "audio": {"accuracy": Cell(Stat([0.62]), [], "classification", "accuracy")},
    }
}


def test_findings_are_computed_from_the_numbers():
    got = {f.claim: f for f in findings(ABLATION, TABLE, FindingsSpec(), PAPER)}
    assert got["Santa > noise only"].verdict == "reproduces"
    assert got["Santa > memory only"].verdict == "partly"
    assert got["training without noise collapses"].verdict == "does not reproduce"
    assert got["memory only collapses"].verdict == "partly"
    assert got["text-only ≈ audio-supervised"].verdict == "reproduces"
    assert "0.500 ± 0.020" in " ".join(got["Santa > noise only"].evidence)
    strict = findings(ABLATION, TABLE, FindingsSpec(parity_tolerance=0.0))
    assert strict[-1].verdict == "does not reproduce"
    no_models = {k: v for k, v in ABLATION.items() if k != "no_noise"}
    assert findings(no_models, {}, FindingsSpec())[2].verdict.startswith("not run")


def test_the_paper_figures_come_from_the_spec_and_never_change_a_verdict():
    with_paper = findings(ABLATION, TABLE, FindingsSpec(), PAPER)
    without = findings(ABLATION, TABLE, FindingsSpec())
    assert [f.verdict for f in with_paper] == [f.verdict for f in without]
    assert with_paper[0].rule.endswith("; paper (AudioCaps CIDEr): Santa 0.735 vs 0.698")
    assert with_paper[2].rule.endswith("; paper: 0.384 / 0.735 = 0.52")
    assert all("paper" not in f.rule for f in without)
