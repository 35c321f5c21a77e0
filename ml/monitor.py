"""monitor: the nightly watch on the model. Drift of D, realized performance of nights whose
horizon closed, and a retrain request when either demands it.

1. **Drift.** A seeded sample of D's features and scores (``drift_sample_rows``) is compared by
   Evidently (``DataDriftPreset``) with the reference of the model that scored D: a sample of its
   training rows and its scores on them, stored with the model when it was trained (so the
   reference changes when the champion does). Per feature: the test Evidently chose, its statistic
   (a p-value or a distance) and the verdict; the share of features drifted and the share of the
   model's importance (XGBoost total gain) they carry; data quality (missing values against the
   reference, categories the model never saw). The score's own distribution is one more column.
2. **Realized performance.** On night D the labels of the night S = D - horizon have just been
   written: S's scores against what happened (ROC-AUC, PR-AUC, lift and capture at 10 %,
   calibration error) go to ``churn.model_performance``.
3. **Retrain request.** Drifted importance at least ``drift_retrain_share``, or S's realized AUC under
   ``realized_min_roc_auc``, requests a retrain, recorded as a ``retrain_request`` event of the
   model's history in MLflow (``churn models history``) at most once per ``retrain_cooldown_days``.
   The step's result says so; in Airflow it becomes an event of the Asset ``churn_retrain_request``,
   which schedules ``churn_training`` (dags/churn_dags). The challenger still has to pass the gate.

Outputs: the HTML report and its JSON under ``<reports>/drift/<D>/`` (a folder, or S3), also logged
to the night's MLflow run (experiment ``<model>-monitoring``); one row per feature in
``churn.drift_metrics``. A rerun of D replaces D's rows, report and run; it requests no second retrain.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churn.core.errors import InputError
from churn.core.feature_defs import CATEGORICAL
from churn.core.pipeline import StepRun, step_main
from churn.core.settings import Settings

log = logging.getLogger("ml.monitor")
SCORE = "churn_probability"
REFERENCE_ARTIFACT = "reference/reference.parquet"
RETRAIN_EVENT = "retrain_request"


# ---- the reference, made at training time -------------------------------------------------------
def reference_sample(fit_rows: pd.DataFrame, model, rows: int, seed: int = 42) -> pd.DataFrame:
    """A sample of the rows the model was fit on, with its own scores on them: what a night is
    compared with. From the latest training snapshot when the rows have dates (features whose
    windows fill up over the history, like 90-day sums, then compare like with like)."""
    frame = fit_rows
    if "snapshot_date" in frame.columns and frame["snapshot_date"].notna().any():
        frame = frame[frame["snapshot_date"] == frame["snapshot_date"].max()]
    sample = frame.sample(n=min(rows, len(frame)), random_state=seed) if len(frame) > rows else frame
    out = sample[model.feature_names].reset_index(drop=True).copy()
    out[SCORE] = model.predict(sample)
    return out


# ---- drift -------------------------------------------------------------------------------------
@dataclass
class ColumnDrift:
    feature: str
    kind: str  # numeric | categorical | score
    test: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    importance: float = 0.0
    missing_share: float | None = None
    missing_share_reference: float | None = None
    unseen_categories: int = 0


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    rows_current: int
    rows_reference: int
    seconds: float = 0.0
    snapshot: object = field(default=None, repr=False)  # Evidently's, for the HTML

    @property
    def features(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.kind != "score"]

    @property
    def drifted_share(self) -> float:
        return sum(c.drifted for c in self.features) / max(1, len(self.features))

    @property
    def drifted_importance(self) -> float:
        return float(sum(c.importance for c in self.features if c.drifted))

    @property
    def score(self) -> ColumnDrift | None:
        return next((c for c in self.columns if c.kind == "score"), None)

    def summary(self) -> dict:
        drifted = sorted((c for c in self.features if c.drifted), key=lambda c: -c.importance)
        return {"rows_current": self.rows_current, "rows_reference": self.rows_reference,
                "features": len(self.features), "drifted_features": [c.feature for c in drifted],
                "drifted_share": round(self.drifted_share, 4), "drifted_importance": round(self.drifted_importance, 4),
                "score_drifted": bool(self.score and self.score.drifted),
                "unseen_categories": {c.feature: c.unseen_categories for c in self.features if c.unseen_categories},
                "seconds": round(self.seconds, 2)}

    def as_dict(self) -> dict:
        return {**self.summary(), "columns": [asdict(c) for c in self.columns]}


def importances(model) -> dict[str, float]:
    """Each feature's share of the model's total gain (features it never split on: 0)."""
    gain = model.booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    return {f: float(gain.get(f, 0.0)) / total for f in model.feature_names}


def _text(col: pd.Series) -> pd.Series:
    return col.astype("object").where(col.notna(), None).map(lambda v: v if v is None else str(v))


def drift(reference: pd.DataFrame, current: pd.DataFrame, model) -> DriftResult:
    """Evidently's verdict on every model feature and the score, current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.time()
    kinds = {f.name: ("categorical" if f.kind == CATEGORICAL else "numeric") for f in model.prep.features}
    kinds[SCORE] = "score"
    for name, frame in (("the reference", reference), ("the night's sample", current)):
        missing = [c for c in kinds if c not in frame.columns]
        if missing:
            raise InputError(f"drift: {name} lacks column(s) {', '.join(missing)} of model features and score")
    if len(current) == 0 or len(reference) == 0:
        raise InputError(f"drift: nothing to compare ({len(current)} rows of the night, {len(reference)} of the reference)")

    def prepared(frame: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c, k in kinds.items():
            out[c] = _text(frame[c]) if k == "categorical" else pd.to_numeric(frame[c], errors="coerce").astype("float64")
        return pd.DataFrame(out)

    ref, cur = prepared(reference), prepared(current)
    definition = DataDefinition(numerical_columns=[c for c, k in kinds.items() if k != "categorical"],
                                categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    snapshot = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                                               reference_data=Dataset.from_pandas(ref, data_definition=definition))
    found: dict[str, tuple[str, float, float]] = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config") or {}
        if cfg.get("type", "").endswith("ValueDrift") and cfg.get("column") in kinds:
            found[cfg["column"]] = (str(cfg.get("method")), float(m["value"]), float(cfg.get("threshold")))
    weights = importances(model)
    unseen = model.prep.unknown_categories(current)
    columns = []
    for c, k in kinds.items():
        if c not in found:  # Evidently leaves out a column it cannot test (e.g. empty in one frame)
            columns.append(ColumnDrift(c, k, "not tested (no values on one side)", None, None, False,
                                       weights.get(c, 0.0), float(cur[c].isna().mean()), float(ref[c].isna().mean()),
                                       int(unseen.get(c, 0))))
            continue
        test, stat, threshold = found[c]
        # Evidently's two kinds of test: a p-value drifts under its threshold, a distance at or over it
        drifted = stat < threshold if "p_value" in test else stat >= threshold
        columns.append(ColumnDrift(c, k, test, stat, threshold, bool(drifted), weights.get(c, 0.0),
                                   float(cur[c].isna().mean()), float(ref[c].isna().mean()), int(unseen.get(c, 0))))
    return DriftResult(columns, len(current), len(reference), time.time() - t0, snapshot)


def report_html(result: DriftResult) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "drift.html"
        result.snapshot.save_html(str(path))
        return path.read_bytes()


# ---- the night's sample ------------------------------------------------------------------------
def night_sample(settings: Settings, d: dt.date, rows: int, seed: int | None = None) -> tuple[pd.DataFrame, dict]:
    """A seeded sample of about ``rows`` of D's scored customers: their features and scores, read
    batch by batch (memory bounded by the sample, whatever the night's size). The model that scored
    D and the row count come along."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from churn.core.lake import delta_table, read_batches

    scores_t = delta_table(settings, "gold", "customer_scores")
    features_t = delta_table(settings, "gold", "customer_features")
    if scores_t is None or features_t is None:
        raise InputError(f"monitor {d}: gold/customer_scores or gold/customer_features does not exist: run the "
                         f"night first (`churn nightly --date {d}`)")
    scores = scores_t.to_pyarrow_dataset()
    flt = ds.field("score_date") == ds.scalar(d)
    total = scores.count_rows(filter=flt)
    if total == 0:
        raise InputError(f"monitor {d}: gold/customer_scores has no rows for {d}: run `churn score --date {d}` first")
    share = min(1.0, rows / total)
    rng = np.random.default_rng(seed if seed is not None else int(f"{d:%Y%m%d}"))
    picked, models = [], set()
    for batch in read_batches(scores, ["customer_id", SCORE, "model_name", "model_version"], flt, 200_000):
        t = pa.Table.from_batches([batch])
        models |= {(r["model_name"], str(r["model_version"]))
                   for r in t.group_by(["model_name", "model_version"]).aggregate([]).to_pylist()}
        picked.append(t if share >= 1 else t.filter(pa.array(rng.random(t.num_rows) < share)))
    if len(models) != 1:
        raise InputError(f"monitor {d}: the night was scored by more than one model {sorted(models)}; rescore it")
    (model_name, model_version), = models
    sample = pa.concat_tables(picked)
    ids = sample.column("customer_id")
    feats = features_t.to_pyarrow_dataset().to_table(
        filter=(ds.field("snapshot_date") == ds.scalar(d)) & ds.field("customer_id").isin(ids),
        batch_readahead=1, fragment_readahead=1)  # memory: the sample, not the night
    frame = feats.to_pandas().merge(sample.select(["customer_id", SCORE]).to_pandas(), on="customer_id", how="inner")
    return frame, {"rows_night": total, "model_name": model_name, "model_version": str(model_version),
                   "features_version": features_t.version(), "scores_version": scores_t.version()}


# ---- realized performance ----------------------------------------------------------------------
def realized(scores: pd.DataFrame, labels: pd.DataFrame) -> dict | None:
    """The scores of one night against the labels of the same snapshot; None when too few to rank."""
    from ml.evaluate import metrics

    joined = scores.merge(labels[["customer_id", "churned"]], on="customer_id", how="inner")
    if joined.empty or joined["churned"].nunique() < 2:
        return None
    m = metrics(joined["churned"].to_numpy(), joined[SCORE].to_numpy())
    return {k: m[k] for k in ("roc_auc", "pr_auc", "lift_top_10", "capture_top_10", "calibration_error", "brier",
                              "base_rate", "mean_predicted", "n", "positives")}


def night_performance(settings: Settings, s: dt.date) -> dict | None:
    """Realized performance of the night ``s``: its scores (gold/customer_scores, the rows published)
    against gold/labels; None when either is missing."""
    from churn.core.lake import delta_table

    scores_t, labels_t = delta_table(settings, "gold", "customer_scores"), delta_table(settings, "gold", "labels")
    if scores_t is None or labels_t is None:
        return None
    scores = scores_t.to_pandas(columns=["customer_id", SCORE, "model_name", "model_version"],
                                filters=[("score_date", "=", s)])
    labels = labels_t.to_pandas(columns=["customer_id", "churned"], filters=[("snapshot_date", "=", s)])
    if scores.empty or labels.empty:
        return None
    out = []
    for (name, version), part in scores.groupby(["model_name", "model_version"]):
        m = realized(part, labels)
        if m is not None:
            out.append({"score_date": s, "model_name": name, "model_version": str(version), **m})
    return out[0] if len(out) == 1 else None


# ---- the retrain decision ----------------------------------------------------------------------
def retrain_reasons(settings: Settings, summary: dict, performance: dict | None) -> list[str]:
    """Why a retrain is due (empty: it is not)."""
    reasons = []
    if summary["drifted_importance"] >= settings.drift_retrain_share:
        top = ", ".join(summary["drifted_features"][:5])
        reasons.append(f"drift: features carrying {summary['drifted_importance']:.0%} of the model's importance "
                       f"drifted (at least {settings.drift_retrain_share:.0%} requests a retrain): {top}")
    if performance is not None and performance["roc_auc"] < settings.realized_min_roc_auc:
        reasons.append(f"performance: the scores of {performance['score_date']} reached a realized ROC-AUC of "
                       f"{performance['roc_auc']:.3f}, under the floor {settings.realized_min_roc_auc:.2f}")
    return reasons


def request_retrain(settings: Settings, d: dt.date, reasons: list[str], details: dict, registry=None) -> dict:
    """Record a retrain request for night ``d`` unless one was recorded for a night of the cooldown
    (``d`` itself included: a rerun of a night requests nothing new). What happened, as a dict."""
    from ml.registry import Registry

    registry = registry or Registry(settings)
    name = settings.model_name
    history = registry.history(name)
    earlier = history[history["event"] == RETRAIN_EVENT] if len(history) else history
    window = {str(d - dt.timedelta(days=i)) for i in range(max(1, settings.retrain_cooldown_days))}
    recent = earlier[earlier["night"].isin(window)] if len(earlier) and "night" in earlier else earlier.iloc[0:0]
    if len(recent):
        last = recent.iloc[-1]
        return {"requested": False, "reasons": reasons, "suppressed_by": f"the request of night {last['night']} "
                f"(cooldown {settings.retrain_cooldown_days} days)"}
    reason = " | ".join(reasons)
    champion = registry.alias_version(name, "champion") or ""
    registry.record(name, RETRAIN_EVENT, champion, champion, reason, details, night=str(d))
    log.warning("monitor %s: retrain requested: %s", d, reason)
    return {"requested": True, "reasons": reasons, "night": str(d)}


# ---- outputs -----------------------------------------------------------------------------------
def store_rows(settings: Settings, d: dt.date, result: DriftResult, meta: dict, report_uri: str,
               performance: dict | None) -> None:
    """D's drift rows replace D's in one transaction; the performance row is upserted."""
    from churn.core.pg import as_publisher, connect

    with connect(settings) as conn:
        as_publisher(conn, settings)
        conn.execute("DELETE FROM churn.drift_metrics WHERE score_date = %s", (d,))
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO churn.drift_metrics (score_date, feature, kind, test, statistic, threshold, drifted,
                   importance, missing_share, missing_share_reference, unseen_categories, rows_current, rows_reference,
                   model_name, model_version, report_uri) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                   %s, %s, %s)""",
                [(d, c.feature, c.kind, c.test, _finite(c.statistic), c.threshold, c.drifted, c.importance,
                  _finite(c.missing_share), _finite(c.missing_share_reference), c.unseen_categories, result.rows_current,
                  result.rows_reference, meta["model_name"], meta["model_version"], report_uri) for c in result.columns])
        if performance is not None:
            p = performance
            conn.execute(
                """INSERT INTO churn.model_performance (score_date, model_name, model_version, horizon_days, rows,
                   positives, roc_auc, pr_auc, lift_top_10, capture_top_10, calibration_error, brier, base_rate,
                   mean_predicted, evaluated_on) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (score_date, model_version) DO UPDATE SET rows = EXCLUDED.rows,
                   positives = EXCLUDED.positives, roc_auc = EXCLUDED.roc_auc, pr_auc = EXCLUDED.pr_auc,
                   lift_top_10 = EXCLUDED.lift_top_10, capture_top_10 = EXCLUDED.capture_top_10,
                   calibration_error = EXCLUDED.calibration_error, brier = EXCLUDED.brier,
                   base_rate = EXCLUDED.base_rate, mean_predicted = EXCLUDED.mean_predicted,
                   evaluated_on = EXCLUDED.evaluated_on, evaluated_at = now()""",
                (p["score_date"], p["model_name"], p["model_version"], settings.label_horizon_days, p["n"],
                 p["positives"], p["roc_auc"], p["pr_auc"], p["lift_top_10"], p["capture_top_10"],
                 p["calibration_error"], p["brier"], p["base_rate"], p["mean_predicted"], d))
        conn.commit()


def _finite(x):
    return None if x is None or not np.isfinite(x) else float(x)


def log_night(registry, d: dt.date, summary: dict, performance: dict | None, files: dict[str, bytes]) -> str:
    """The night's MLflow run (experiment ``<model>-monitoring``; a rerun of D reuses D's run): metrics,
    the drift report and its JSON. Its run id."""
    name = registry.settings.model_name
    exp = registry.experiment_id(f"{name}-monitoring")
    found = registry.client.search_runs([exp], filter_string=f"tags.night = '{d}'", max_results=1)
    mlflow = registry.mlflow
    with mlflow.start_run(experiment_id=exp, run_id=found[0].info.run_id if found else None,
                          run_name=f"night {d}") as run:
        mlflow.set_tags({"night": str(d), "model_version": summary["model_version"]})
        metrics = {"drifted_share": summary["drifted_share"], "drifted_importance": summary["drifted_importance"],
                   "score_drifted": float(summary["score_drifted"]), "rows_sampled": summary["rows_current"]}
        if performance is not None:
            metrics.update({f"realized_{k}": performance[k] for k in ("roc_auc", "pr_auc", "lift_top_10",
                                                                      "calibration_error")})
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            for fname, data in files.items():
                Path(tmp, fname).write_bytes(data)
            mlflow.log_artifacts(tmp, "drift")
    return run.info.run_id


def load_reference(registry, name: str, version: str) -> pd.DataFrame:
    """The reference sample logged with a model version (its training run's artifact)."""
    mv = registry.client.get_model_version(name, version)
    try:
        path = registry.mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=REFERENCE_ARTIFACT)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
        raise InputError(f"model {name} version {version} has no drift reference ({REFERENCE_ARTIFACT} in its "
                         f"training run {mv.run_id}): it was trained before drift monitoring; train a new version "
                         f"({type(exc).__name__})") from None
    return pd.read_parquet(path)


def monitor(settings: Settings, d: dt.date, push: bool = True) -> dict:
    """The whole step for night ``d``; its result (what the DAG relays: ``retrain.requested``)."""
    from churn.core.reports import write_report
    from ml.registry import Registry

    t0 = time.time()
    registry = Registry(settings)
    current, meta = night_sample(settings, d, settings.drift_sample_rows)
    name, version = meta["model_name"], meta["model_version"]
    model = registry.load(name, version)
    reference = load_reference(registry, name, version)
    result = drift(reference, current, model)
    summary = {"night": str(d), "model_name": name, "model_version": version, "rows_night": meta["rows_night"],
               **result.summary()}
    s = d - dt.timedelta(days=settings.label_horizon_days)
    performance = night_performance(settings, s)
    if performance is not None:
        summary["realized"] = {k: (str(v) if k == "score_date" else v) for k, v in performance.items()}
    reasons = retrain_reasons(settings, summary, performance)
    html = report_html(result)
    full = {**summary, "inputs": {k: meta[k] for k in ("features_version", "scores_version")},
            "columns": [asdict(c) for c in result.columns]}
    report = write_report(settings, f"drift/{d}/drift.html", html)
    report_json = json.dumps(full, indent=1, default=str).encode()
    write_report(settings, f"drift/{d}/drift.json", report_json)
    store_rows(settings, d, result, meta, report, performance)
    summary["report"] = report
    summary["mlflow_run"] = log_night(registry, d, summary, performance,
                                      {"drift.html": html, "drift.json": report_json})
    summary["retrain"] = (request_retrain(settings, d, reasons, {"night": str(d), **result.summary(),
                                                                  "realized": summary.get("realized")}, registry)
                          if reasons else {"requested": False, "reasons": []})
    summary["thresholds"] = {"drift_retrain_share": settings.drift_retrain_share,
                             "realized_min_roc_auc": settings.realized_min_roc_auc}
    summary["columns"] = [{"feature": c.feature, "test": c.test, "statistic": _finite(c.statistic), "drifted": c.drifted}
                          for c in result.columns]
    summary["seconds"] = round(time.time() - t0, 2)
    log.info("monitor %s: %d of %d features drifted (%.0f%% of the model's importance), score %s; realized %s; "
             "retrain %s; report %s", d, len(summary["drifted_features"]), summary["features"],
             100 * summary["drifted_importance"], "drifted" if summary["score_drifted"] else "stable",
             f"ROC-AUC {performance['roc_auc']:.3f} on {s}" if performance else f"none yet ({s})",
             "requested" if summary["retrain"]["requested"] else "not requested", report)
    return summary


def run_step(job: StepRun) -> dict:
    """The pipeline's ``monitor`` step (churn/core/pipelines.yaml)."""
    return monitor(job.settings, job.date)


def main(argv: list[str] | None = None) -> int:
    return step_main("monitor", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
