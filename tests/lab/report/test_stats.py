"""The report's numbers over seeds and the comparison rules behind its verdicts."""

import pytest

from mats_lab.report.stats import Stat, collapses, greater, on_par, verdict


def test_stat_mean_and_sample_std():
    s = Stat([0.2, 0.4, 0.6])
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(0.2) and s.n == 3
    assert s.fmt() == "0.400 ± 0.200" and Stat([0.25]).fmt() == "0.250"
    assert Stat([0.1, None]).fmt() == "n/a" and Stat([0.1, None]).mean is None


def test_comparison_rules():
    assert greater(Stat([0.5, 0.52, 0.48]), Stat([0.3, 0.31, 0.29])) is True
    assert greater(Stat([0.5, 0.6, 0.4]), Stat([0.45, 0.46, 0.44])) is False  # within spread
    assert greater(Stat([0.5]), Stat([0.49])) is True  # one seed: plain >
    assert greater(Stat([None]), Stat([0.1])) is None
    assert collapses(Stat([0.3]), Stat([0.6]), 0.75) is True
    assert collapses(Stat([0.5]), Stat([0.6]), 0.75) is False
    assert collapses(Stat([0.0]), Stat([0.0]), 0.75) is False  # nothing to collapse from
    assert on_par(Stat([0.55]), Stat([0.6]), 0.1) is True
    assert on_par(Stat([0.5]), Stat([0.6]), 0.1) is False
    assert [verdict(c) for c in ([True, True], [True, False], [False, None])] == [
        "reproduces",
        "partly",
        "does not reproduce",
    ]
    assert verdict([None]).startswith("not run")
