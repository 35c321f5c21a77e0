"""score: the champion's churn risk for every active customer on D -> ``gold/customer_scores``.

The champion (MLflow alias) is loaded once on the driver and shipped to the executors as one
broadcast (booster bytes + preprocessing); each Python worker deserialises it once and keeps it
for every batch it scores (``mapInArrow``: Arrow batches in, Arrow batches out, the reasons built
as Arrow columns by :func:`ml.scoring.score_table`). Nothing is collected to the driver.

Each row: customer id, score date, churn probability, risk decile (1 = the riskiest 10 % of the
day, from approximate quantiles of the day's scores), risk band (``CHURN_RISK_BANDS`` thresholds),
the top 3 reasons (the features pushing the risk up most for that customer: name, description,
value and SHAP contribution from XGBoost's ``pred_contribs``), and the model's name, version and
run id. Partitioned by ``score_date``; a rerun of D replaces D (``replaceWhere``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from churn.core.errors import InputError
from churn.core.feature_defs import CATEGORICAL, FEATURES
from churn.core.scores import BANDS
from churn.core.settings import Settings
from churn.core.pipeline import StepRun
from ml.scoring import score_table
from spark_jobs.common import read_delta, replace_where, spark_step_main

log = logging.getLogger("spark_jobs.score")
TABLE = ("gold", "customer_scores")
SCORE_SCHEMA = (
    "customer_id string, score_date date, churn_probability double, risk_band string, "
    "reasons array<struct<feature:string,description:string,value:string,contribution:double>>"
)
_CACHE: dict[str, object] = {}  # per Python worker: model version -> ChurnModel


def _model_from_payload(payload: dict):
    """The ChurnModel of a broadcast payload, built once per worker process."""
    key = payload["version_key"]
    model = _CACHE.get(key)
    if model is None:
        import xgboost as xgb

        from ml.model import ChurnModel, Preprocessor

        booster = xgb.Booster()
        booster.load_model(bytearray(payload["booster"]))
        booster.set_param({"nthread": 1})  # one worker per core already
        model = ChurnModel(booster, Preprocessor.from_dict(payload["prep"]), payload["info"])
        _CACHE.clear()
        _CACHE[key] = model
    return model


def champion_payload(settings: Settings) -> dict:
    """Load the champion on the driver; the dict (bytes + preprocessing + lineage) is what executors get."""
    from ml.registry import Registry

    reg = Registry(settings)
    name = settings.model_name
    version = reg.champion_version(name)
    mv = reg.client.get_model_version(name, version)
    model = reg.load(name, version)
    return {"name": name, "version": version, "run_id": mv.run_id or "", "version_key": f"{name}/{version}/{mv.run_id}",
            "booster": bytes(model.booster.save_raw("ubj")), "prep": model.prep.to_dict(), "info": model.info,
            "features": model.feature_names}


def check_signature(features: DataFrame, payload: dict, uri: str) -> None:
    have = dict(features.dtypes)
    missing = [f for f in payload["features"] if f not in have]
    if missing:
        raise InputError(f"model {payload['name']} version {payload['version']} expects feature column(s) "
                         f"{', '.join(missing)} that {uri} does not have: its signature does not match the table")
    kinds = {f["name"]: f["kind"] for f in payload["prep"]["features"]}
    wrong = [f"{n} ({have[n]}, model expects {'text' if k == CATEGORICAL else 'a number'})" for n, k in kinds.items()
             if (k == CATEGORICAL) != (have[n] == "string")]
    if wrong:
        raise InputError(f"model {payload['name']} version {payload['version']}: column type(s) differ from its "
                         f"signature in {uri}: {', '.join(wrong)}")


def deciles(scored: DataFrame, rel_error: float = 1e-5, qs: list[float] | None = None) -> DataFrame:
    """Risk decile from approximate quantiles of the day's probabilities (no global sort, no collect)."""
    qs = qs if qs is not None else decile_bounds(scored, rel_error)
    # decile 1 = the riskiest: above the 90th percentile
    expr = F.lit(10)
    for i, q in enumerate(qs, start=1):  # q = i-th decile boundary (10 %, 20 %, ...)
        expr = F.when(F.col("churn_probability") > F.lit(q), F.lit(10 - i)).otherwise(expr)
    return scored.withColumn("risk_decile", expr.cast("int"))


def decile_bounds(scored: DataFrame, rel_error: float = 1e-5) -> list[float]:
    """The 10 %, 20 %, ... 90 % quantiles of the day's probabilities. Spark's summaries keep every
    value of a day under ``1 / rel_error`` customers (100k), so there the bounds are exact and a rerun
    on other files or executors gives the same deciles; above it a bound is off by at most
    ``rel_error`` of the day's rank (100 customers in 10M)."""
    return day_stats(scored, rel_error)["bounds"]


def day_stats(scored: DataFrame, rel_error: float = 1e-5) -> dict:
    """The day's row count, decile bounds (:func:`decile_bounds`) and rows per risk band, in one
    aggregation: one pass over the scored rows, not one job per figure (``percentile_approx`` keeps
    the same Greenwald-Khanna summaries as ``approxQuantile``, as a SQL aggregate, with accuracy
    ``1 / rel_error``)."""
    row = scored.agg(
        F.count(F.lit(1)).alias("rows"),
        F.percentile_approx("churn_probability", [i / 10 for i in range(1, 10)], int(round(1 / rel_error))).alias("bounds"),
        *[F.count(F.when(F.col("risk_band") == b, 1)).alias(f"band_{b}") for b in BANDS]).first()
    return {"rows": row["rows"], "bounds": list(row["bounds"] or []), "bands": {b: row[f"band_{b}"] for b in BANDS}}


def run(spark: SparkSession, settings: Settings, d: dt.date) -> dict:
    uri_features = settings.table_uri("gold", "customer_features")
    features = read_delta(spark, uri_features, "gold/customer_features", "run the features step first")
    day = features.where(F.col("snapshot_date") == F.lit(d))
    if day.limit(1).count() == 0:
        raise InputError(f"gold/customer_features has no rows for {d}: build them first (`churn run --date {d}`)")
    payload = champion_payload(settings)
    check_signature(features, payload, uri_features)
    descriptions = {f.name: f.description for f in FEATURES}
    bands = settings.risk_band_list
    bc = spark.sparkContext.broadcast(payload)
    cols = ["customer_id", *payload["features"]]

    def score_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = _model_from_payload(bc.value)
        for batch in batches:
            yield from score_table(model, batch.to_pandas(), d, descriptions, bands).to_batches()

    scored = day.select(*cols).mapInArrow(score_batches, SCORE_SCHEMA).persist()
    try:
        stats = day_stats(scored)  # the pass that scores and caches the rows
        n, qs, band_rows = stats["rows"], stats["bounds"], stats["bands"]
        out = (deciles(scored, qs=qs)
               .withColumn("model_name", F.lit(payload["name"]))
               .withColumn("model_version", F.lit(payload["version"]))
               .withColumn("model_run_id", F.lit(payload["run_id"]))
               .withColumn("scored_at", F.current_timestamp())
               .select("customer_id", "score_date", "churn_probability", "risk_decile", "risk_band", "reasons",
                       "model_name", "model_version", "model_run_id", "scored_at"))
        replace_where(out, settings.table_uri(*TABLE), f"score_date = DATE'{d}'", ["score_date"])
    finally:
        scored.unpersist()
        bc.unpersist()
    log.info("gold/customer_scores %s: %d customers scored with %s version %s", d, n, payload["name"], payload["version"])
    return {"date": str(d), "rows": n, "model": payload["name"], "version": payload["version"], "run_id": payload["run_id"],
            "risk_bands": band_rows,
            "score_quantiles": {f"0.{i}": round(q, 6) for i, q in enumerate(qs, start=1)}}


def run_step(job: StepRun):
    """The pipeline's ``score`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.date)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("score", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
