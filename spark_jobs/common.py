"""What every lakehouse step shares: dates, Delta reads and writes, and the command-line wrapper."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from typing import Callable, Iterable

from churn.errors import ChurnError, InputError

log = logging.getLogger("spark_jobs")


# ---- dates ---------------------------------------------------------------------------------
def parse_date(value: str, what: str = "--date") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a date as YYYY-MM-DD, got {value!r}") from None


def date_range(start: dt.date, end: dt.date, every: int = 1) -> list[dt.date]:
    """start, start + every, ... up to end; end itself is always included."""
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    if every < 1:
        raise InputError(f"--every must be at least 1, got {every}")
    days = list(range(0, (end - start).days + 1, every))
    out = [start + dt.timedelta(days=d) for d in days]
    if out[-1] != end:
        out.append(end)
    return out


def check_not_future(d: dt.date, today: dt.date | None = None) -> None:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    if d > today:
        raise InputError(f"date {d} is in the future (today is {today} UTC): no drop can exist for it yet")


def sql_dates(dates: Iterable[dt.date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(set(dates)))


# ---- Delta ---------------------------------------------------------------------------------
def path_exists(spark, uri: str) -> bool:
    """Hadoop FileSystem check, so local folders and s3a:// behave alike."""
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return bool(fs.exists(path))


def is_delta(spark, uri: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, uri))


def read_delta(spark, uri: str, what: str, hint: str):
    if not is_delta(spark, uri):
        raise InputError(f"{what} table {uri} does not exist yet; {hint}")
    return spark.read.format("delta").load(uri)


def replace_where(df, uri: str, predicate: str, partition_by: list[str]) -> None:
    """Atomically replace the rows matching ``predicate`` with ``df`` (one Delta commit).

    Rows of ``df`` outside the predicate make Delta fail the write, so a step can never touch
    partitions other than its own.
    """
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .partitionBy(*partition_by)
        .save(uri)
    )


def last_commit_metrics(spark, uri: str) -> dict:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, uri).history(1).select("version", "operationMetrics").first()
    return {"version": row["version"], **{k: int(v) for k, v in (row["operationMetrics"] or {}).items() if v.isdigit()}}


# ---- command line --------------------------------------------------------------------------
def add_date_arguments(p: argparse.ArgumentParser, every: bool = False) -> None:
    p.add_argument("--date", help="logical date YYYY-MM-DD (the run's partition)")
    p.add_argument("--start", help="first date of a range (backfill)")
    p.add_argument("--end", help="last date of a range (inclusive)")
    if every:
        p.add_argument("--every", type=int, default=1, help="snapshot every N days within the range")
    p.add_argument("--config", help="settings YAML (else CHURN_CONFIG and CHURN_* variables)")
    p.add_argument("-v", "--verbose", action="store_true")


def dates_from_args(args) -> tuple[dt.date, dt.date]:
    if args.date and (args.start or args.end):
        raise InputError("give either --date or --start/--end, not both")
    if args.date:
        d = parse_date(args.date)
        return d, d
    if not (args.start and args.end):
        raise InputError("give --date YYYY-MM-DD, or --start and --end for a range")
    start, end = parse_date(args.start, "--start"), parse_date(args.end, "--end")
    date_range(start, end)
    return start, end


def step_main(name: str, doc: str, body: Callable, argv: list[str] | None = None, every: bool = False) -> int:
    """Shared ``python -m spark_jobs.<step>`` entry point: parse dates, open Spark, run, report."""
    from churn import logs
    from churn.settings import load_settings
    from churn.spark import get_spark

    p = argparse.ArgumentParser(prog=f"python -m spark_jobs.{name}", description=doc)
    add_date_arguments(p, every=every)
    args = p.parse_args(argv)
    logs.setup(args.verbose)
    try:
        start, end = dates_from_args(args)
        check_not_future(end)
        settings = load_settings(args.config)
        spark = get_spark(settings, f"churn-{name}")
        t0 = time.time()
        result = body(spark, settings, start, end, args)
        log.info("%s %s..%s done in %.1fs: %s", name, start, end, time.time() - t0, result)
        return 0
    except ChurnError as exc:
        log.error("%s failed: %s", name, exc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
