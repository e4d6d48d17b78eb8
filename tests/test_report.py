"""The report's Jinja2 templates (issue 12.3): every value escaped by gates.safety unless we built
it, data values in the evidence section too, and the templates shipped with the package."""

from __future__ import annotations

import fnmatch
import tomllib

import numpy as np
import pandas as pd

from gates import evidence_report, model_evidence, report, safety
from gates.config import Task
from gates.evidence_gates import ModelEvidence
from tests.conftest import REPO
from tests.test_security import HOSTILE, _assert_inert, _render


def test_a_template_value_without_a_filter_is_escaped_by_our_function():
    env = report._environment()
    assert env.from_string("{{ v }}").render(v=HOSTILE[1]) == safety.md(HOSTILE[1])  # not &lt;img
    assert env.from_string("{{ v|md(10) }}").render(v="x" * 50) == safety.md("x" * 50, 10)
    assert env.from_string("{{ v }}").render(v=report.Link("run", "http://h/r")) == "[run](http://h/r)"


def test_the_model_evidence_section_shows_data_values_as_text():
    hostile = HOSTILE[:3] + HOSTILE[5:]
    segments = pd.DataFrame({"segment": hostile, "support": range(len(hostile)),
                             "candidate_loss": 0.5, "lift": np.nan})
    ev = ModelEvidence(
        task=Task.CLASSIFICATION, metric="roc_auc", failures=pd.DataFrame({"test_row": [1], "label": [1]}),
        failure_summary={"rows": 1, "test_rows": 10},
        segments=model_evidence.SegmentSearch(segments, {}, 10, 3, False), calibration=None,
        distribution={"predicted_classes": {HOSTILE[0]: 3}, "never_predicted": [HOSTILE[5]]},
        reliance=pd.DataFrame({"feature": hostile, "candidate_share": 0.1, "champion_share": np.nan,
                               "share_change": np.nan}), reliance_rows=10)
    markdown = evidence_report.markdown(ev)
    html = _render(markdown)
    _assert_inert(html)
    assert "| 0 | 0.5 | n/a |" in markdown  # numbers as before: formatted, not escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the value is there, as text


def test_the_templates_ship_with_the_package():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gates"]
    templates = sorted((REPO / "gates" / "templates").iterdir())
    assert templates
    for path in templates:
        name = path.relative_to(REPO / "gates").as_posix()
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not package data"
