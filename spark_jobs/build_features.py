"""features: ``gold/customer_features``, one row per active customer per snapshot date.

Computed from the silver tables with the definitions in :mod:`churn.features` (point-in-time:
nothing after the snapshot date is used). Partitioned by ``snapshot_date``; a run for a set of
snapshot dates replaces exactly those partitions in one Delta commit. Each feature column carries
its kind (categorical/numeric) and description as column metadata, so training and serving read
the feature list from the table schema and from the same module.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from churn.core.errors import InputError
from churn.core.feature_defs import FEATURES
from spark_jobs.features import compute_features, snapshot_frame
from churn.core.settings import Settings
from churn.core.sources import SOURCES
from churn.core.pipeline import StepRun
from spark_jobs.common import read_delta, replace_where, sql_dates, spark_step_main

log = logging.getLogger("spark_jobs.build_features")
TABLE = ("gold", "customer_features")


def with_feature_metadata(df: DataFrame) -> DataFrame:
    for f in FEATURES:
        df = df.withMetadata(f.name, {"churn.kind": f.kind, "comment": f.description})
    return df


def silver_tables(spark: SparkSession, settings: Settings) -> dict[str, DataFrame]:
    return {
        name: read_delta(spark, settings.table_uri("silver", name), f"silver/{name}", "run ingest, validate and silver first")
        for name in SOURCES
    }


def check_ingested(spark: SparkSession, settings: Settings, dates: list[dt.date]) -> None:
    """Refuse snapshots for dates whose drop was never processed (they would be silently stale)."""
    bronze = read_delta(spark, settings.table_uri("bronze", "usage"), "bronze/usage", "run the ingest step first")
    seen = {r[0] for r in bronze.where(f"ingest_date IN ({sql_dates(dates)})").select("ingest_date").distinct().collect()}
    missing = [d for d in dates if d not in seen]
    if missing:
        raise InputError(
            f"no ingested drop for snapshot date(s) {', '.join(map(str, missing))}: "
            "run ingest, validate and silver for them first"
        )


def run(spark: SparkSession, settings: Settings, dates: list[dt.date]) -> dict:
    check_ingested(spark, settings, dates)
    t = silver_tables(spark, settings)
    df = compute_features(t["customers"], t["usage"], t["invoices"], t["tickets"], t["plan_changes"],
                          t["cancellations"], snapshot_frame(spark, dates))
    uri = settings.table_uri(*TABLE)
    replace_where(with_feature_metadata(df), uri, f"snapshot_date IN ({sql_dates(dates)})", ["snapshot_date"])
    counts = {
        str(r["snapshot_date"]): r["n"]
        for r in spark.read.format("delta").load(uri).where(f"snapshot_date IN ({sql_dates(dates)})")
        .groupBy("snapshot_date").agg(F.count("*").alias("n")).collect()
    }
    for d in sorted(counts):
        log.info("gold/customer_features %s: %d active customers", d, counts[d])
    return counts


def run_step(job: StepRun):
    """The pipeline's ``features`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.dates)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("features", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
