"""What every lakehouse step shares: Delta reads and writes, and the command-line wrapper."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

from churn.core.errors import InputError

log = logging.getLogger("spark_jobs")
T = TypeVar("T")


def sql_dates(dates: Iterable[dt.date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(set(dates)))


# ---- Delta ---------------------------------------------------------------------------------
def path_exists(spark, uri: str) -> bool:
    """Hadoop FileSystem check, so local folders and s3a:// behave alike."""
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return bool(fs.exists(path))


def read_text(spark, uri: str) -> str | None:
    """A small file's text through Hadoop's FileSystem (local folders and s3a:// alike); None if absent."""
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


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



def per_table(items: Iterable[T], write: Callable[[T], Any], writers: int) -> list[Any]:
    """``write(item)`` for every item (one table each), ``writers`` at a time in threads of this
    process's SparkSession, results in the items' order.

    Each table's commit is its own; when one fails the others still finish (as they would have had
    they run first) and the first failure is raised, so a rerun of the step completes it.
    """
    items = list(items)
    if writers <= 1 or len(items) <= 1:
        return [write(i) for i in items]
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="table-writer") as pool:
        futures = [pool.submit(write, i) for i in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


# ---- command line --------------------------------------------------------------------------
def spark_step_main(name: str, run_step: Callable, argv: list[str] | None = None) -> int:
    """``python -m spark_jobs.<module> --date D``: the declared step ``name`` with a SparkSession."""
    from churn.core.pipeline import step_main
    from spark_jobs.session import get_spark

    return step_main(name, run_step, argv, spark_factory=get_spark)
