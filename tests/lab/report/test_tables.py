"""Table planning rules (the tables themselves are built whole in test_report.py)."""

from mats_lab.report.tables import sweep_overrides


def test_k_sweep_switches_k_means_on_for_a_model_that_skips_it():
    assert sweep_overrides("k", 10, "no_kmeans") == {"k": 10, "mode": "full"}
    assert sweep_overrides("k", 10, "full") == {"k": 10}
    assert sweep_overrides("lam", 0.3, "no_kmeans") == {"lam": 0.3}
