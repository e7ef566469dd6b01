"""The report spec: loading, normalising, the errors users see, the shipped spec."""

from pathlib import Path

import pytest
import yaml

from mats_lab.report.jobs import Evaluations
from mats_lab.report.spec import ReportError, load_spec

ROOT = Path(__file__).resolve().parents[3]


def test_spec_is_checked(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump(
            {"models": {"text": "runs/a", "sigma": {0.015: "runs/a"}}, "limit": {"default": 5, "soundworld-mcq": 2}}
        )
    )
    spec = load_spec(path, out=tmp_path / "o")
    assert spec.models.text == ["runs/a"] and spec.models.sigma == {0.015: ["runs/a"]}
    assert spec.limit_for("soundworld-mcq") == 2 and spec.limit_for("soundworld-aqa-open") == 5
    assert spec.out == str(tmp_path / "o") and spec.cache_dir == tmp_path / "o" / "cache"
    assert spec.paper.table8 == {}  # no paper figures unless the spec gives them
    for bad, message in (
        ({"models": {"text": []}}, "at least one"),
        ({"models": {"text": "a"}, "limt": 3}, "limt"),
        ({"models": {"text": "a"}, "limit": 0}, "limit"),
        ({"models": {"text": "a"}, "paper": {"table8": {"full": 0.7}}}, "table8"),
        ({"models": {"text": "a"}, "rows": {"txt": "x"}}, "txt"),
    ):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ReportError, match=message):
            load_spec(path)
    path.write_text("- a list\n")
    with pytest.raises(ReportError, match="mapping"):
        load_spec(path)
    path.write_text(yaml.safe_dump({"models": {"text": str(tmp_path / "nope")}}))
    with pytest.raises(ReportError, match="nope"):
        Evaluations(load_spec(path))


def test_the_shipped_report_spec_is_valid():
    spec = load_spec(ROOT / "configs" / "report" / "mats-mini.yaml")
    assert spec.out == "docs/results" and spec.models.text and spec.models.audio
    assert spec.rows.text == "MATS-mini (text-only)" and spec.paper.table8["full"] == 0.735
    m = spec.models
    names = {Path(d).parent.name for d in m.all()}
    script = (ROOT / "scripts" / "train_report_models.py").read_text()
    assert all(n in {"mats", "mats-audio"} or f'"{n}"' in script for n in names)
