"""What every lakehouse step shares: Delta reads and writes, and the command-line wrapper."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Iterable

from churn.core.errors import InputError

log = logging.getLogger("spark_jobs")


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



# ---- command line --------------------------------------------------------------------------
def spark_step_main(name: str, run_step: Callable, argv: list[str] | None = None) -> int:
    """``python -m spark_jobs.<module> --date D``: the declared step ``name`` with a SparkSession."""
    from churn.core.pipeline import step_main
    from spark_jobs.session import get_spark

    return step_main(name, run_step, argv, spark_factory=get_spark)
