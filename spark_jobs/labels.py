"""labels: ``gold/labels``, churned within the horizon after each feature snapshot.

Run on date D, it labels every snapshot S of ``gold/customer_features`` whose horizon has fully
passed (S + horizon <= D) and that has no labels yet; a snapshot whose horizon is still open is
never labelled. Label = the customer's cancellation date falls in (S, S + horizon], using the
cancellations ingested by D. Partitioned by snapshot date; written with replaceWhere on exactly the
snapshots it fills, so a rerun changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.features import label_rows
from churn.core.settings import Settings
from churn.core.pipeline import StepRun
from spark_jobs.common import is_delta, read_delta, replace_where, sql_dates, spark_step_main

log = logging.getLogger("spark_jobs.labels")
TABLE = ("gold", "labels")


def pending_snapshots(feature_dates: set[dt.date], labelled: set[dt.date], run_date: dt.date, horizon: int) -> list[dt.date]:
    """Snapshots whose horizon closed by ``run_date`` and that have no labels yet."""
    return sorted(d for d in feature_dates - labelled if d + dt.timedelta(days=horizon) <= run_date)


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict:
    features = read_delta(spark, settings.table_uri("gold", "customer_features"), "gold/customer_features",
                          "run the features step first")
    uri = settings.table_uri(*TABLE)
    feature_dates = {r[0] for r in features.select("snapshot_date").distinct().collect()}
    labelled = set()
    if is_delta(spark, uri):
        labelled = {r[0] for r in spark.read.format("delta").load(uri).select("snapshot_date").distinct().collect()}
    pending = pending_snapshots(feature_dates, labelled, run_date, settings.label_horizon_days)
    if not pending:
        log.info("labels: no snapshot with a closed %d-day horizon left unlabelled on %s", settings.label_horizon_days, run_date)
        return {}
    cancellations = read_delta(spark, settings.table_uri("silver", "cancellations"), "silver/cancellations",
                               "run the silver step first")
    rows = label_rows(features.where(f"snapshot_date IN ({sql_dates(pending)})"), cancellations, run_date,
                      settings.label_horizon_days)
    replace_where(rows, uri, f"snapshot_date IN ({sql_dates(pending)})", ["snapshot_date"])
    stats = {
        str(r["snapshot_date"]): (r["n"], r["pos"])
        for r in spark.read.format("delta").load(uri).where(f"snapshot_date IN ({sql_dates(pending)})")
        .groupBy("snapshot_date").agg(F.count("*").alias("n"), F.sum("churned").alias("pos")).collect()
    }
    for d in sorted(stats):
        log.info("gold/labels %s: %d rows, %d churned within %d days", d, *stats[d], settings.label_horizon_days)
    return stats


def run_step(job: StepRun):
    """The pipeline's ``labels`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.end)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("labels", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
