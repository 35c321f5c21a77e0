"""The platform's Grafana dashboards, as code: ``python build.py`` writes the three JSON files beside
it (committed; the chart ships them as dashboard ConfigMaps). tests/helm/test_monitoring.py checks the
files equal this script's output, and on a real Prometheus that every panel's query is valid and
returns data after a nightly and some predictor requests.

Plain JSON in Grafana's dashboard model (schemaVersion 39), with a Prometheus datasource variable,
so nothing but the standard library is needed to build them.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
NIGHTLY = 'job="churn_nightly"'


def panel(title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries",
          description: str = "", w: int = 12, h: int = 8, **field) -> dict:
    return {"type": kind, "title": title, "description": description, "datasource": DS,
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DS}
                        for i, (expr, legend) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit, **field}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
            "gridPos": {"w": w, "h": h}}


def dashboard(uid: str, title: str, description: str, panels: list[dict], time_from: str) -> dict:
    x = y = 0
    for i, p in enumerate(panels, start=1):  # left to right, two to a row
        if x + p["gridPos"]["w"] > 24:
            x, y = 0, y + 8
        p["id"] = i
        p["gridPos"].update({"x": x, "y": y})
        x += p["gridPos"]["w"]
    return {
        "uid": uid, "title": title, "description": description, "tags": ["churn-platform"], "editable": True,
        "schemaVersion": 39, "version": 1, "timezone": "utc", "refresh": "1m",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []}, "links": [], "panels": panels,
    }


def nightly() -> dict:
    return dashboard("churn-nightly", "Churn: nightly pipeline",
                     "Every step of the nightly (Airflow churn_nightly): rows, quarantine, durations, last success.", [
        panel("Rows per step, last night", [
            (f"sum(churn_rows_ingested{{{NIGHTLY}}})", "ingested (bronze)"),
            (f"sum(churn_rows_merged{{{NIGHTLY}}})", "merged (silver)"),
            (f"churn_customers_featured{{{NIGHTLY}}}", "customers featured"),
            (f"churn_customers_scored{{{NIGHTLY}}}", "customers scored"),
            (f"churn_rows_published{{{NIGHTLY}}}", "rows published")], "short"),
        panel("Quarantine rate per source", [
            (f"sum by (source) (churn_rows_quarantined{{{NIGHTLY}}}) / sum by (source) "
             f"(churn_rows_ingested{{{NIGHTLY}}})", "{{source}}")], "percentunit",
            description="Rows of the night that failed validation, over the rows ingested."),
        panel("Step duration", [(f"churn_step_duration_seconds{{{NIGHTLY}}}", "{{step}}")], "s"),
        panel("Since each step's last success", [
            (f"time() - churn_step_last_success_timestamp_seconds{{{NIGHTLY}}}", "{{step}}")], "s", kind="stat",
            thresholds={"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                      {"color": "red", "value": 26 * 3600}]}),
        panel("Last run succeeded", [(f"churn_step_success{{{NIGHTLY}}}", "{{step}}")], "bool_yes_no", kind="stat"),
        panel("Night each step last ran for", [(f"churn_step_night_timestamp_seconds{{{NIGHTLY}}} * 1000", "{{step}}")],
              "dateTimeAsIsoNoDateIfToday", kind="stat"),
    ], "now-7d")


def model() -> dict:
    return dashboard("churn-model", "Churn: model",
                     "What the champion scores, how its inputs drift, how its scores turned out.", [
        panel("Score distribution (deciles of the night's probabilities)", [
            (f"churn_score_quantile{{{NIGHTLY}}}", "q{{quantile}}")], "percentunit"),
        panel("Risk-band mix", [
            (f"churn_customers_by_risk_band{{{NIGHTLY}}} / ignoring (band) group_left "
             f"sum without (band) (churn_customers_by_risk_band{{{NIGHTLY}}})", "{{band}}")], "percentunit",
            kind="bargauge"),
        panel("Drift: share of the model's importance drifted", [
            (f"churn_drift_importance_share{{{NIGHTLY}}}", "drifted importance"),
            (f"churn_drift_share{{{NIGHTLY}}}", "drifted features"),
            (f"churn_drift_importance_share_threshold{{{NIGHTLY}}}", "retrain threshold")], "percentunit"),
        panel("Drift per feature (1 = drifted)", [
            (f"churn_feature_drifted{{{NIGHTLY}}} == 1", "{{feature}}")], "short", kind="table"),
        panel("Drift statistic per feature", [
            (f"topk(10, churn_feature_drift_statistic{{{NIGHTLY}}})", "{{feature}} ({{test}})")], "short",
            kind="bargauge"),
        panel("Realized ROC-AUC (nights whose horizon closed)", [
            (f"churn_realized_roc_auc{{{NIGHTLY}}}", "realized ROC-AUC"),
            (f"churn_realized_roc_auc_floor{{{NIGHTLY}}}", "floor")], "short"),
        panel("Realized calibration error", [(f"churn_realized_calibration_error{{{NIGHTLY}}}", "ECE")], "short"),
        panel("Champion version scoring", [(f"churn_champion_version{{{NIGHTLY}}}", "version")], "none", kind="stat"),
        panel("Retrain requested", [(f"churn_retrain_requested{{{NIGHTLY}}}", "requested")], "bool_yes_no", kind="stat"),
    ], "now-30d")


def online() -> dict:
    return dashboard("churn-online", "Churn: online predictor",
                     "The KServe predictor: traffic, latency, errors and its feature lookups.", [
        panel("Requests per second by status", [
            ("sum by (code) (rate(churn_requests_total[5m]))", "{{code}}")], "reqps"),
        panel("Predict latency p50 / p99", [
            ('histogram_quantile(0.5, sum by (le) (rate(request_predict_seconds_bucket{model_name="churn"}[5m])))', "p50"),
            ('histogram_quantile(0.99, sum by (le) (rate(request_predict_seconds_bucket{model_name="churn"}[5m])))',
             "p99")], "s"),
        panel("Error ratio (5xx)", [  # no 5xx at all is a ratio of 0, not a gap
            ('(sum(rate(churn_requests_total{code=~"5.."}[5m])) or vector(0)) / sum(rate(churn_requests_total[5m]))',
             "5xx")], "percentunit"),
        panel("Feature lookup latency p50 / p99", [
            ("histogram_quantile(0.5, sum by (le) (rate(churn_feature_lookup_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(churn_feature_lookup_seconds_bucket[5m])))", "p99")], "s"),
        panel("Refused (4xx) by reason", [("sum by (reason) (rate(churn_requests_refused_total[5m]))", "{{reason}}")],
              "reqps"),
        panel("Online features readable", [("churn_feature_store_up", "{{instance}}")], "bool_yes_no", kind="stat"),
        panel("Model version served", [("churn_model_info", "v{{model_version}}")], "none", kind="table"),
    ], "now-6h")


DASHBOARDS = {"churn-nightly.json": nightly, "churn-model.json": model, "churn-online.json": online}


def render() -> dict[str, str]:
    return {name: json.dumps(make(), indent=1, sort_keys=True) + "\n" for name, make in DASHBOARDS.items()}


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) of every panel."""
    return [(name, p["title"], t["expr"]) for name, make in DASHBOARDS.items() for p in make()["panels"]
            for t in p["targets"]]


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
