"""Batch metrics: what every pipeline step pushes to a Prometheus Pushgateway (``CHURN_PUSHGATEWAY_URL``).

A batch step lives minutes, so Prometheus cannot scrape it; it pushes its metrics when it ends,
success or failure, into its own group (``job=churn_<pipeline>``, ``step=<name>``) with PUT-less
``pushadd``: metrics of the same name are replaced, others kept, so a failed night's push leaves the
last success's timestamp in place (the "no success within 26 h" alert reads it). Prometheus
scrapes the Pushgateway with ``honor_labels``. Names follow Prometheus conventions: base units
(seconds), ``_timestamp_seconds`` for times; every value is the last run's, so gauges (a counter
would need the step to know the previous total).

The metrics (one row each in helm/churn-platform/files/prometheus/README.md's table):
every step: churn_step_duration_seconds, churn_step_last_run_timestamp_seconds,
churn_step_last_success_timestamp_seconds / churn_step_last_failure_timestamp_seconds,
churn_step_success, churn_step_night_timestamp_seconds (the logical date it ran for);
per step: churn_rows_ingested{source}, churn_rows_quarantined{source}, churn_rows_merged{source},
churn_customers_featured, churn_customers_scored, churn_champion_version,
churn_customers_by_risk_band{band}, churn_score_quantile{quantile}, churn_rows_published,
and the monitor's churn_drift_share, churn_drift_importance_share, churn_score_drifted,
churn_feature_drift_statistic{feature,test}, churn_feature_drifted{feature}, churn_realized_roc_auc,
churn_realized_pr_auc, churn_realized_calibration_error, churn_retrain_requested, and the thresholds the
alerts compare with: churn_drift_importance_share_threshold, churn_realized_roc_auc_floor.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

log = logging.getLogger("churn.metrics")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v == v else None  # NaN: nothing to say


def step_metrics(step: str, result: Any) -> list[tuple[str, str, dict, float]]:
    """(name, help, labels, value) of what a step's result tells, beyond its timing."""
    out: list[tuple[str, str, dict, float]] = []

    def add(name, doc, value, **labels):
        v = _num(value)
        if v is not None:
            out.append((name, doc, labels, v))

    rows = getattr(result, "rows", None)
    if step == "ingest" and isinstance(rows, dict):
        for source, n in rows.items():
            add("churn_rows_ingested", "Rows of the night's raw drops written to bronze, per source", n, source=source)
    if not isinstance(result, dict):
        return out
    if step == "validate":
        from churn.core.sources import SOURCES

        quarantined = result.get("quarantined") or {}
        for source in sorted(set(SOURCES) | set(quarantined)):  # a clean source is a 0, not a gap
            add("churn_rows_quarantined", "Rows of the night that failed validation (quarantine), per source",
                quarantined.get(source, 0), source=source)
    elif step == "silver":
        for source, m in result.items():
            if isinstance(m, dict):
                add("churn_rows_merged", "Rows the night's MERGE inserted or updated in silver, per source",
                    (m.get("numTargetRowsInserted") or 0) + (m.get("numTargetRowsUpdated") or 0), source=source)
    elif step == "features":
        add("churn_customers_featured", "Active customers with features for the night", sum(
            v for v in result.values() if isinstance(v, (int, float))))
    elif step == "score":
        add("churn_customers_scored", "Customers the champion scored for the night", result.get("rows"))
        add("churn_champion_version", "Registered model version that scored the night", result.get("version"))
        for band, n in (result.get("risk_bands") or {}).items():
            add("churn_customers_by_risk_band", "Customers scored for the night, per risk band", n, band=band)
        for q, v in (result.get("score_quantiles") or {}).items():
            add("churn_score_quantile", "Quantiles of the night's churn probabilities (0.1 ... 0.9)", v, quantile=q)
    elif step == "publish":
        add("churn_rows_published", "Score rows the night published to PostgreSQL", result.get("rows"))
    elif step == "monitor":
        add("churn_drift_share", "Share of the model's features drifted against its reference", result.get("drifted_share"))
        add("churn_drift_importance_share", "Share of the model's importance (total gain) carried by drifted features",
            result.get("drifted_importance"))
        add("churn_score_drifted", "1 if the night's score distribution drifted from the reference's",
            result.get("score_drifted"))
        add("churn_retrain_requested", "1 if the night requested a retrain", (result.get("retrain") or {}).get("requested"))
        thresholds = result.get("thresholds") or {}
        add("churn_drift_importance_share_threshold", "Drifted importance share that requests a retrain "
            "(CHURN_DRIFT_RETRAIN_SHARE)", thresholds.get("drift_retrain_share"))
        add("churn_realized_roc_auc_floor", "Realized ROC-AUC under which a retrain is requested "
            "(CHURN_REALIZED_MIN_ROC_AUC)", thresholds.get("realized_min_roc_auc"))
        for c in result.get("columns") or []:
            add("churn_feature_drift_statistic", "The drift test's statistic per feature (p-value or distance)",
                c.get("statistic"), feature=c["feature"], test=c["test"])
            add("churn_feature_drifted", "1 if the feature drifted against the reference", c.get("drifted"),
                feature=c["feature"])
        realized = result.get("realized") or {}
        for name, k in (("churn_realized_roc_auc", "roc_auc"), ("churn_realized_pr_auc", "pr_auc"),
                        ("churn_realized_calibration_error", "calibration_error")):
            add(name, f"Realized {k} of the night whose label horizon closed", realized.get(k))
    return out


def push_step(settings, pipeline: str, step, night: dt.date | None, seconds: float, result: Any, ok: bool) -> bool:
    """Push one step run's metrics; a Pushgateway that does not answer is logged, never fatal (the
    night's work is done either way). Whether it was pushed."""
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    if not settings.pushgateway_url:
        return False
    registry = CollectorRegistry()
    now = time.time()

    def gauge(name, doc, value, labels=None):
        labels = labels or {}
        g = Gauge(name, doc, sorted(labels), registry=registry) if name not in gauges else gauges[name]
        gauges[name] = g
        (g.labels(**labels) if labels else g).set(value)

    gauges: dict[str, Any] = {}
    gauge("churn_step_duration_seconds", "Wall time of the step's last run", seconds)
    gauge("churn_step_last_run_timestamp_seconds", "When the step last ended, success or failure", now)
    gauge("churn_step_success", "1 if the step's last run succeeded, 0 if it failed", 1.0 if ok else 0.0)
    gauge("churn_step_last_success_timestamp_seconds" if ok else "churn_step_last_failure_timestamp_seconds",
          "When the step last succeeded" if ok else "When the step last failed", now)
    if night is not None:
        gauge("churn_step_night_timestamp_seconds", "The logical date (UTC midnight) the step last ran for",
              dt.datetime(night.year, night.month, night.day, tzinfo=dt.timezone.utc).timestamp())
    if ok:
        for name, doc, labels, value in step_metrics(step.name, result):
            gauge(name, doc, value, labels)
    try:
        pushadd_to_gateway(settings.pushgateway_url, job=f"churn_{pipeline}", registry=registry,
                           grouping_key={"step": step.name}, timeout=10)
        return True
    except Exception as exc:  # noqa: BLE001 - metrics are a side channel: a down gateway fails nothing
        from churn.core.settings import redact_url

        log.warning("could not push %s's metrics to the Pushgateway %s: %s", step.name,
                    redact_url(settings.pushgateway_url), exc)
        return False
