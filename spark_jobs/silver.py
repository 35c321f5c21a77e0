"""silver: typed, de-duplicated state per entity, MERGEd on each source's natural key.

Takes the bronze rows of D (or a range) that pass the validation suite's row rules, casts them to
the contract's types, keeps one row per natural key (the latest version; ties broken by ingest
date), and MERGEs into ``<lake>/silver/<source>``. A row only replaces a stored one when it is at
least as recent, so re-running an old date after newer ones never rolls an entity back.
``_first_ingest_date`` records when an entity was first seen; it only ever moves earlier, so a
night run after a later one leaves the same silver as the two in date order.
``silver/usage`` is partitioned by usage date so the feature windows read only what they need.
"""

from __future__ import annotations

import datetime as dt
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from churn.core.settings import Settings
from churn.core.sources import DATE_FORMAT, SOURCES, Source
from churn.core.pipeline import StepRun
from spark_jobs.common import is_delta, per_table, read_delta, spark_step_main
from spark_jobs.validate import passing_rows

log = logging.getLogger("spark_jobs.silver")
PARTITIONS = {"usage": ["usage_date"]}


def typed(df: DataFrame, source: Source) -> DataFrame:
    """Cast bronze strings to the contract types; unparseable values become null."""
    cols = []
    for name, kind in source.columns.items():
        c = F.col(name)
        if kind == "date":
            cols.append(F.try_to_date(c, DATE_FORMAT).alias(name))
        elif kind == "string":
            cols.append(F.trim(c).alias(name))
        else:
            cols.append(c.try_cast(kind).alias(name))
    return df.select(*cols, F.col("ingest_date").alias("_ingest_date"))


def latest_per_key(df: DataFrame, source: Source) -> DataFrame:
    """One row per natural key: the latest version, then the latest ingest, then a stable tiebreak."""
    w = Window.partitionBy(*source.key).orderBy(
        F.col(source.version).desc_nulls_last(), F.col("_ingest_date").desc(),
        F.xxhash64(*source.names).desc(),
    )
    first = F.min("_ingest_date").over(Window.partitionBy(*source.key))
    return (df.withColumn("_first_ingest_date", first)
            .withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn"))


def prepare(bronze: DataFrame, source: Source) -> DataFrame:
    clean = typed(passing_rows(bronze, source.name), source)
    # keys and event times that passed the format rules but are still not valid (2026-02-31)
    for col in (*source.key, source.event_time):
        clean = clean.where(F.col(col).isNotNull())
    return latest_per_key(clean, source)


def merge(spark: SparkSession, uri: str, batch: DataFrame, source: Source) -> None:
    """MERGE on the natural key. ``_first_ingest_date`` (when the entity was first known) is set on
    insert and kept on update, so point-in-time reads can ask "was this known by D?"."""
    if not is_delta(spark, uri):
        batch.write.format("delta").partitionBy(*PARTITIONS.get(source.name, [])).save(uri)
        return
    cond = " AND ".join(f"t.{k} = s.{k}" for k in source.key)
    for part in PARTITIONS.get(source.name, []):
        bounds = batch.agg(F.min(part).alias("lo"), F.max(part).alias("hi")).first()
        if bounds["lo"] is None:
            return
        cond += f" AND t.{part} >= DATE'{bounds['lo']}' AND t.{part} <= DATE'{bounds['hi']}'"  # prune
    newer = (f"s.{source.version} > t.{source.version} OR (s.{source.version} = t.{source.version} "
             "AND s._ingest_date >= t._ingest_date)")
    # a night run after a later one (a backfill out of order) may be the first to see an entity:
    # its first-seen date only ever moves earlier, so D's features find what D's drop held
    first = "least(t._first_ingest_date, s._first_ingest_date)"
    (
        DeltaTable.forPath(spark, uri).alias("t")
        .merge(batch.alias("s"), cond)
        .whenMatchedUpdate(condition=newer, set={**{c: f"s.{c}" for c in batch.columns if c != "_first_ingest_date"},
                                                 "_first_ingest_date": first})
        .whenMatchedUpdate(condition="s._first_ingest_date < t._first_ingest_date",
                           set={"_first_ingest_date": "s._first_ingest_date"})
        .whenNotMatchedInsertAll()
        .execute()
    )


def run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date) -> dict:
    predicate = f"ingest_date >= DATE'{start}' AND ingest_date <= DATE'{end}'"
    bronzes = {name: read_delta(spark, settings.table_uri("bronze", name), f"bronze/{name}",
                                "run the ingest step first").where(predicate) for name in SOURCES}

    def write(name: str) -> dict:
        uri = settings.table_uri("silver", name)
        merge(spark, uri, prepare(bronzes[name], SOURCES[name]), SOURCES[name])
        metrics = DeltaTable.forPath(spark, uri).history(1).select("operationMetrics").first()[0] or {}
        done = {k: int(metrics.get(k, 0)) for k in ("numTargetRowsInserted", "numTargetRowsUpdated", "numOutputRows")
                if k in metrics}
        log.info("silver/%s: %s", name, done)
        return done

    return dict(zip(SOURCES, per_table(SOURCES, write, settings.spark_table_writers)))


def run_step(job: StepRun):
    """The pipeline's ``silver`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.start, job.end)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("silver", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
