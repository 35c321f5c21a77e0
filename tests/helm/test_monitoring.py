"""The alert rules and dashboards, offline: promtool checks the rules and runs their unit tests (each
alert firing and staying quiet), the committed dashboards are what their builder makes, and every
metric a rule or a panel names is one the platform emits. (On a real Prometheus, after a nightly
and predictor requests: tests/dags/test_nightly_e2e.py.)"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FILES = ROOT / "helm" / "churn-platform" / "files"
RULES = FILES / "prometheus" / "rules.yaml"
GRAFANA = FILES / "grafana"
PROMQL_WORDS = {"sum", "by", "rate", "time", "max", "absent", "or", "on", "group_left", "histogram_quantile",
                "ignoring", "without", "topk", "le", "job", "step", "code", "model_name", "band", "source"}


def builder():
    sys.path.insert(0, str(GRAFANA))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers before a selector or standing alone)."""
    expr = re.sub(r'\{[^}]*\}', "", re.sub(r'"[^"]*"', "", expr))
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and "_" in w}


def rule_exprs() -> list[tuple[str, str]]:
    import yaml

    return [(r["alert"], r["expr"]) for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool: apt-get install prometheus")
def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 7 rules found" in check.stdout, check.stdout + check.stderr
    tested = subprocess.run(["promtool", "test", "rules", "rules.test.yaml"], cwd=RULES.parent, capture_output=True,
                            text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # every alert is exercised firing by the unit tests
    text = (RULES.parent / "rules.test.yaml").read_text()
    for alert, _ in rule_exprs():
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", text), alert


def test_the_committed_dashboards_are_what_the_builder_makes():
    made = builder().render()
    assert sorted(made) == sorted(p.name for p in GRAFANA.glob("*.json"))
    for name, text in made.items():
        assert (GRAFANA / name).read_text() == text, f"{name}: run python {GRAFANA / 'build.py'}"
        board = json.loads(text)
        assert board["uid"] and board["panels"] and all(p["targets"] for p in board["panels"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))


def emitted_metrics() -> set[str]:
    """Every metric name the platform's code defines: the batch steps' (churn/core/metrics.py), the
    predictor's (ml/serving) and KServe's, with a histogram's and a counter's series."""
    import kserve.metrics

    names = set(re.findall(r'"(churn_[a-z_]+)"', (ROOT / "churn" / "core" / "metrics.py").read_text()))
    for path in (ROOT / "ml" / "serving").glob("*.py"):
        text = path.read_text()
        for kind, name in re.findall(r'(Counter|Gauge|Histogram)\(\s*"([a-z_]+)"', text):
            names |= {f"{name}_total"} if kind == "Counter" and not name.endswith("_total") else {name}
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    for name in re.findall(r'Histogram\(\s*"([a-z_]+)"', Path(kserve.metrics.__file__).read_text()):
        names |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names | {"up"}


def test_every_metric_a_rule_or_panel_names_is_emitted():
    emitted = emitted_metrics()
    named = {(f"rule {a}", m) for a, e in rule_exprs() for m in metric_names(e)}
    named |= {(f"{d} / {p}", m) for d, p, e in builder().queries() for m in metric_names(e)}
    assert {m for _, m in named} >= {"churn_step_last_success_timestamp_seconds", "churn_requests_total",
                                      "request_predict_seconds_bucket", "churn_feature_drifted"}
    assert [(where, m) for where, m in sorted(named) if m not in emitted] == []
