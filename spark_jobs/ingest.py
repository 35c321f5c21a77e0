"""ingest: a date's raw drop -> bronze Delta tables (``<lake>/bronze/<source>``).

Bronze keeps what the export said, as strings, plus where it came from (``ingest_date``,
``_source_file``) and rows the parser could not split (``_corrupt_record``). Each source's table is
partitioned by ``ingest_date``; a run for D (or a range) replaces exactly those partitions with
Delta's replaceWhere, so a rerun never appends twice. Every source of the range is read and its
columns checked before any table is written.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import os
from urllib.parse import unquote
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from churn.core.errors import InputError
from churn.core.settings import Settings
from churn.core.sources import MARKER, SOURCES, Source, parse_marker
from churn.core.dates import date_range
from churn.core.pipeline import StepRun
from spark_jobs.common import path_exists, per_table, read_text, replace_where, spark_step_main

log = logging.getLogger("spark_jobs.ingest")
CORRUPT = "_corrupt_record"


def drop_folder(settings: Settings, source: str, d: dt.date) -> str:
    return f"{settings.raw_uri.rstrip('/')}/{source}/ingest_date={d.isoformat()}"


def _column_error(source: Source, folder: str, found: list[str]) -> InputError:
    missing = [c for c in source.names if c not in found]
    extra = [c for c in found if c not in source.names and c != CORRUPT]
    hints = []
    for m in missing:
        close = difflib.get_close_matches(m, extra, n=1, cutoff=0.6)
        if close:
            hints.append(f"{close[0]!r} looks like a renamed {m!r}")
    return InputError(
        f"{source.name} export in {folder} lacks column(s) {', '.join(missing)}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f". Expected columns: {', '.join(source.names)}"
    )


def read_source(spark: SparkSession, settings: Settings, source: Source, dates: list[dt.date]) -> DataFrame:
    """The drops of ``dates`` for one source, as bronze rows (strings + lineage)."""
    folders = [drop_folder(settings, source.name, d) for d in dates]
    if source.fmt == "csv":
        header = spark.read.option("header", True).csv(folders).columns
        if not set(source.names) <= set(header):
            raise _column_error(source, folders[0].rsplit("/", 1)[0], header)
        schema = StructType([StructField(c, StringType()) for c in header] + [StructField(CORRUPT, StringType())])
        df = (
            spark.read.schema(schema)
            .option("header", True)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .csv(folders)
        )
    else:
        df = spark.read.option("primitivesAsString", True).option("mode", "PERMISSIVE").json(folders)
        found = [c for c in df.columns if c != CORRUPT]
        if not found:  # every file of the range is empty: no events
            schema = StructType([StructField(c, StringType()) for c in source.names + [CORRUPT, "_source_file"]])
            return spark.createDataFrame([], schema).select(
                *source.names, CORRUPT, F.lit(None).cast("date").alias("ingest_date"), "_source_file")
        absent = [c for c in source.names if c not in found]
        if [c for c in absent if c not in source.optional]:
            raise _column_error(source, folders[0].rsplit("/", 1)[0], found)
        for c in absent + ([CORRUPT] if CORRUPT not in df.columns else []):
            df = df.withColumn(c, F.lit(None).cast("string"))
    extra = [c for c in df.columns if c not in source.names and c != CORRUPT]
    if extra:
        log.warning("%s: ignoring column(s) not in the contract: %s", source.name, ", ".join(extra))
    path = F.col("_metadata.file_path")
    return df.select(
        *[F.col(c).cast("string") for c in source.names],
        F.col(CORRUPT),
        F.to_date(F.regexp_extract(path, r"ingest_date=(\d{4}-\d{2}-\d{2})", 1)).alias("ingest_date"),
        path.alias("_source_file"),
    )


@dataclass
class IngestResult:
    rows: dict[str, int]

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.rows.items())


def missing_drops(spark: SparkSession, settings: Settings, dates: list[dt.date]) -> list[str]:
    return [
        drop_folder(settings, s, d) for d in dates for s in SOURCES
        if not path_exists(spark, drop_folder(settings, s, d))
    ]


def check_no_gap(settings: Settings, start: dt.date, force: bool = False) -> None:
    """Refuse ``start`` when an earlier date after the lake's first one was never ingested.

    Silver keeps when each entity was first seen and features read "what was known by D", so a
    night built before an earlier night's drop is ingested lacks that drop for good (the backfill
    must run in date order). ``force`` ingests anyway: a later rerun of the night fixes it.
    """
    from churn.core.lake import ingested_dates

    earlier = sorted(d for d in ingested_dates(settings) if d < start)
    if not earlier:
        return  # the lake's first night, or a history before it
    seen = set(earlier)
    gaps = [d for d in date_range(earlier[0], start - dt.timedelta(days=1)) if d not in seen]
    if not gaps:
        return
    shown = ", ".join(str(d) for d in gaps[:8]) + (f" and {len(gaps) - 8} more" if len(gaps) > 8 else "")
    if force:
        log.warning("ingesting %s although the drops of %s were never ingested (--force): rerun %s after them",
                    start, shown, start)
        return
    raise InputError(
        f"refusing to ingest {start}: the drop(s) of {shown} (after the lake's first night {earlier[0]}) were never "
        f"ingested, and nights built out of order lose rows first seen on those dates. Run them first, in date "
        f"order (`churn run --start {gaps[0]} --end {start}`, or a backfill with --max-active-runs 1), "
        f"or pass --force to ingest {start} anyway and rerun it afterwards.")


def read_markers(spark: SparkSession, settings: Settings, dates: list[dt.date]) -> dict[str, dict[str, int]]:
    """Every drop's completion marker: drop folder -> data file -> rows. A drop without one is
    incomplete (still uploading, or its export failed) and refused, naming every such folder."""
    folders = [drop_folder(settings, s, d) for d in dates for s in SOURCES]
    texts = {f: read_text(spark, f"{f}/{MARKER}") for f in folders}
    unmarked = [f for f, text in texts.items() if text is None]
    if unmarked:
        shown = "\n  ".join(unmarked[:12]) + ("\n  ..." if len(unmarked) > 12 else "")
        raise InputError(
            f"{len(unmarked)} drop(s) have no {MARKER} marker, so their export is not complete (an exporter writes "
            f"the marker last, with each file's row count); nothing was ingested:\n  {shown}")
    return {f: parse_marker(text, f"{f}/{MARKER}") for f, text in texts.items()}


def _location(uri: str, encoded: bool = False) -> str:
    """One spelling of a folder's location, for Spark's ``_metadata.file_path`` (URL-encoded,
    ``file:/...``) and the settings' plain paths (possibly relative) alike."""
    if encoded:
        uri = unquote(uri)
    if uri.startswith("file:"):
        uri = "/" + uri[len("file:"):].lstrip("/")
    return os.path.abspath(uri) if "://" not in uri else uri.rstrip("/")


def check_counts(markers: dict[str, dict[str, int]], read: dict[str, int]) -> None:
    """Every file a marker names was read with exactly its rows, and no data file is unnamed."""
    problems = []
    by_folder: dict[str, dict[str, int]] = {}
    for uri, n in read.items():
        folder, name = uri.rsplit("/", 1)
        by_folder.setdefault(_location(folder, encoded=True), {})[unquote(name)] = n
    for folder, files in markers.items():
        got = by_folder.get(_location(folder), {})
        for name, rows in sorted(files.items()):
            if got.get(name, 0) != rows:
                problems.append(f"{folder}/{name}: read {got.get(name, 0)} rows, its {MARKER} marker says {rows}")
        for name in sorted(set(got) - set(files)):
            problems.append(f"{folder}/{name}: {got[name]} rows in a file its {MARKER} marker does not list")
    if problems:
        shown = "\n  ".join(problems[:12]) + ("\n  ..." if len(problems) > 12 else "")
        raise InputError(f"{len(problems)} file(s) of the drops disagree with their markers (a truncated, partial or "
                         f"late file); nothing was ingested:\n  {shown}")


def run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date, force: bool = False) -> IngestResult:
    dates = date_range(start, end)
    check_no_gap(settings, start, force)
    missing = missing_drops(spark, settings, dates)
    if missing:
        shown = "\n  ".join(missing[:12]) + ("\n  ..." if len(missing) > 12 else "")
        raise InputError(f"raw drop missing for {len(missing)} source-date(s) under {settings.raw_uri}:\n  {shown}")
    markers = read_markers(spark, settings, dates)
    frames = {name: read_source(spark, settings, src, dates) for name, src in SOURCES.items()}
    tagged = [df.select(F.lit(name).alias("source"), "_source_file") for name, df in frames.items()]
    union = tagged[0]
    for t in tagged[1:]:
        union = union.unionByName(t)
    per_file = union.groupBy("source", "_source_file").agg(F.count("*").alias("n")).collect()
    check_counts(markers, {r["_source_file"]: r["n"] for r in per_file})
    counts = dict.fromkeys(frames, 0)
    for r in per_file:
        counts[r["source"]] += r["n"]
    if sum(counts.values()) == 0:
        raise InputError(f"raw drop for {start}..{end} under {settings.raw_uri} is empty: every export has no rows")
    predicate = f"ingest_date >= DATE'{start}' AND ingest_date <= DATE'{end}'"

    def write(item):
        name, df = item
        replace_where(df, settings.table_uri("bronze", name), predicate, ["ingest_date"])
        log.info("bronze/%s: %d rows for %s..%s", name, counts[name], start, end)

    per_table(frames.items(), write, settings.spark_table_writers)
    return IngestResult(counts)


def run_step(job: StepRun):
    """The pipeline's ``ingest`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.start, job.end, force=job.force)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("ingest", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
