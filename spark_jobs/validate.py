"""validate: run each source's Great Expectations suite on the bronze rows of D (or a range).

The suites live in ``spark_jobs/expectations/<source>.json`` (GX's own format). Two outcomes:

* Row-level expectations (``mostly`` < 1): rows failing them go to ``<lake>/quarantine/rejected_rows``
  with the rule names as reasons; silver never sees them. If more than ``1 - mostly`` of a batch
  fails one rule, GX reports the expectation failed and the run stops (for batches of at least
  ``validation_min_rows`` rows; below that a rate is noise and the rows are only quarantined).
* A failed expectation (row-level over its threshold, or a table-level one such as the row count)
  raises ``ValidationFailed`` naming the source, column and rule, before anything is written.

GX validates the Spark DataFrame itself (no collect to the driver). Results are kept as JSON and
as GX data docs (HTML) under ``<reports>/validation``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from functools import lru_cache
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from churn.core.errors import ValidationFailed
from churn.core.settings import Settings
from churn.core.dates import date_range
from churn.core.sources import SOURCES
from churn.core.pipeline import StepRun
from spark_jobs.common import read_delta, replace_where, spark_step_main

log = logging.getLogger("spark_jobs.validate")
SUITES_DIR = Path(__file__).resolve().parent / "expectations"
QUARANTINE = ("quarantine", "rejected_rows")


@lru_cache(maxsize=None)
def load_suite(source: str) -> dict:
    path = SUITES_DIR / f"{source}.json"
    return json.loads(path.read_text())


def rule_name(exp: dict) -> str:
    kw = exp["kwargs"]
    return exp.get("meta", {}).get("rule") or f"{exp['type']}({kw.get('column', '')})"


def _ok(exp: dict) -> Column | None:
    """A Spark condition true for rows that pass a row-level expectation (GX's semantics)."""
    t, kw = exp["type"], exp["kwargs"]
    if t == "expect_column_values_to_not_be_null":
        return F.col(kw["column"]).isNotNull()
    if t == "expect_column_values_to_be_null":
        return F.col(kw["column"]).isNull()
    c = F.col(kw.get("column", kw.get("column_A", "")))
    if t == "expect_column_values_to_match_regex":
        return c.isNull() | c.rlike(kw["regex"])
    if t == "expect_column_values_to_be_in_set":
        return c.isNull() | c.isin(*kw["value_set"])
    if t == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = F.col(kw["column_A"]), F.col(kw["column_B"])
        cmp = (a >= b) if kw.get("or_equal") else (a > b)
        return a.isNull() | b.isNull() | cmp
    return None  # table-level expectation: no row to quarantine


def row_rules(source: str) -> list[tuple[str, Column]]:
    return [(rule_name(e), ok) for e in load_suite(source)["expectations"] if (ok := _ok(e)) is not None]


def validation_frame(bronze: DataFrame) -> DataFrame:
    """What the suites see: bronze strings, with ingest_date as ISO text like the event dates."""
    return bronze.withColumn("ingest_date", F.col("ingest_date").cast("string"))


def with_reasons(bronze: DataFrame, source: str) -> DataFrame:
    """Adds ``_reasons``: the names of the row rules a row fails (empty when it passes)."""
    reasons = F.filter(
        F.array(*[F.when(~ok, F.lit(name)) for name, ok in row_rules(source)]), lambda x: x.isNotNull()
    )
    return validation_frame(bronze).withColumn("_reasons", reasons)


def passing_rows(bronze: DataFrame, source: str) -> DataFrame:
    """Bronze rows that pass every row rule of the source's suite (what silver takes)."""
    cond = F.lit(True)
    for _, ok in row_rules(source):
        cond = cond & F.coalesce(ok, F.lit(False))
    return validation_frame(bronze).where(cond).withColumn("ingest_date", F.col("ingest_date").cast("date"))


class GXValidator:
    """One ephemeral GX context for a validate run: each source's suite runs on its batch, and the
    data docs (every source of the run in one index) are rendered once at the end.

    A batch of at most ``pandas_max_rows`` rows is handed to GX's pandas engine on the driver; a
    larger one to its Spark engine. The suites and GX's verdicts are the same either way (tested in
    tests/spark_jobs/test_validate.py); what differs is cost: the Spark engine runs Spark jobs for
    every metric of every expectation, about 2-7 s per source however small the batch, while a
    night's drop of a mid-sized base fits in a few MB of pandas.
    """

    def __init__(self, docs_dir: Path | None = None, pandas_max_rows: int = 0):
        import great_expectations as gx

        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # GX's "Calculating Metrics" bars are for a person at a terminal; in a task log (Airflow, a
        # pod) they would be hundreds of lines a night, and the step logs one summary line instead
        self.context.variables.progress_bars = ProgressBarsConfig(globally=sys.stderr.isatty())
        self.docs = docs_dir is not None
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name="churn",
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self.pandas_max_rows = pandas_max_rows
        self.sources = {"spark": self.context.data_sources.add_spark(name="bronze"),
                        "pandas": self.context.data_sources.add_pandas(name="bronze_on_driver")}

    def engine(self, rows: int) -> str:
        return "pandas" if rows <= self.pandas_max_rows else "spark"

    def validate(self, df: DataFrame, source: str, rows: int | None = None) -> dict:
        """Validate a Spark DataFrame (``rows`` long, when known) with the source's GX suite; GX's
        result as a dict."""
        gx = self._gx
        engine = self.engine(rows) if rows is not None else "spark"
        suite = self.context.suites.add(gx.ExpectationSuite(**load_suite(source)))
        batch_def = self.sources[engine].add_dataframe_asset(name=source).add_batch_definition_whole_dataframe("batch")
        vdef = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{source}_validation", data=batch_def, suite=suite))
        data = df.toPandas() if engine == "pandas" else df
        return vdef.run(batch_parameters={"dataframe": data}).to_json_dict()

    def build_docs(self) -> None:
        if self.docs:
            self.context.build_data_docs(site_names=["churn"])


def failures(result: dict, source: str, min_rows: int = 0) -> list[str]:
    """Failed expectations as sentences naming source, column and rule.

    A row-level expectation (one with ``mostly``) over fewer than ``min_rows`` rows is not a
    failure of the run: its rows are quarantined anyway, and the rate is only logged.
    """
    out = []
    for r in result["results"]:
        if r["success"]:
            continue
        cfg = r["expectation_config"]
        kw = cfg["kwargs"]
        res = r.get("result") or {}
        if "mostly" in kw and (res.get("element_count") or 0) < min_rows:
            log.warning("%s: rule %s fails on %s of %s rows, over its threshold but the batch is smaller than "
                        "%d rows: quarantined, not stopping", source, cfg.get("meta", {}).get("rule"),
                        res.get("unexpected_count"), res.get("element_count"), min_rows)
            continue
        col = kw.get("column") or f"{kw.get('column_A')} vs {kw.get('column_B')}"
        if "unexpected_percent" in res:
            seen = (f"{res.get('unexpected_count')} of {res.get('element_count')} rows "
                    f"({res['unexpected_percent']:.2f}%) fail, allowed {100 * (1 - kw.get('mostly', 1)):.2f}%; "
                    f"examples: {res.get('partial_unexpected_list', [])[:5]}")
        else:
            seen = f"observed {res.get('observed_value')!r}"
        rule = cfg.get("meta", {}).get("rule") or cfg["type"]
        out.append(f"source {source}, column {col}, rule {rule} ({cfg['type']}): {seen}")
    return out


def volume_problems(settings: Settings, start: dt.date, end: dt.date) -> list[str]:
    """Each source-date of the range whose bronze rows fall under ``volume_min_ratio`` of the median
    of the 7 days before it: a partial export that passed every row rule (rules have no minimum)."""
    from statistics import median

    from churn.core.lake import partition_rows

    out = []
    for source in SOURCES:
        rows = partition_rows(settings, "bronze", source, "ingest_date")
        for d in date_range(start, end):
            before = [rows[p] for p in (d - dt.timedelta(days=k) for k in range(1, 8)) if p in rows]
            if len(before) < 3 or median(before) < settings.volume_min_rows:
                continue
            usual, n = median(before), rows.get(d, 0)
            if n < settings.volume_min_ratio * usual:
                out.append(f"source {source}, date {d}, rule volume: {n} rows, under {settings.volume_min_ratio:.0%} "
                           f"of the median of the {len(before)} days before it ({usual:g} rows): a partial export?")
    return out


def run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date) -> dict:
    """Validate the drops of ``start``..``end``; results (JSON) and data docs (HTML) go to the reports
    store (a folder, or S3: written locally, then uploaded, failed or not)."""
    from churn.core.reports import report_uri, staged

    label = f"{start}_{end}" if start != end else str(start)
    with staged(settings, f"validation/{label}") as out_dir, staged(settings, "validation/data_docs") as docs_dir:
        result = _run(spark, settings, start, end, out_dir, docs_dir, report_uri(settings, f"validation/{label}"))
    result["reports"] = report_uri(settings, f"validation/{label}")
    if settings.validation_data_docs:
        result["data_docs"] = report_uri(settings, "validation/data_docs/index.html")
    return result


def _run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date, out_dir: Path, docs_dir: Path,
         where: str) -> dict:
    predicate = f"ingest_date >= DATE'{start}' AND ingest_date <= DATE'{end}'"
    rejected, summary = [], {}
    problems = volume_problems(settings, start, end)
    gx_run = GXValidator(docs_dir if settings.validation_data_docs else None, settings.validation_pandas_max_rows)
    for source in SOURCES:
        bronze = read_delta(spark, settings.table_uri("bronze", source), f"bronze/{source}",
                            "run the ingest step for this date first").where(predicate)
        batch = validation_frame(bronze).cache()  # the Spark engine runs one Spark job per metric on it
        try:
            rows = batch.count()
            log.info("validating %d %s row(s) of %s..%s with GX's %s engine", rows, source, start, end,
                     gx_run.engine(rows))
            result = gx_run.validate(batch, source, rows)
        finally:
            batch.unpersist()
        (out_dir / f"{source}.json").write_text(json.dumps(result, indent=1, default=str))
        problems += failures(result, source, settings.validation_min_rows)
        bad = with_reasons(bronze, source).where(F.size("_reasons") > 0)
        rejected.append(bad.select(
            F.lit(source).alias("source"),
            F.col("ingest_date").cast("date").alias("ingest_date"),
            F.col("_reasons").alias("reasons"),
            F.to_json(F.struct(*SOURCES[source].names, "_corrupt_record"), {"ignoreNullFields": "false"}).alias("record"),
            "_source_file",
        ))
        stats = result.get("statistics", {})
        summary[source] = f"{stats.get('successful_expectations')}/{stats.get('evaluated_expectations')} expectations"
    gx_run.build_docs()
    (out_dir / "summary.json").write_text(json.dumps({"problems": problems, "suites": summary}, indent=1))
    if problems:
        raise ValidationFailed(
            f"validation of {start}..{end} failed ({len(problems)} expectation(s)); nothing downstream was written:\n  "
            + "\n  ".join(problems) + f"\n(details: {where})"
        )
    all_rejected = rejected[0]
    for r in rejected[1:]:
        all_rejected = all_rejected.unionByName(r)
    uri = settings.table_uri(*QUARANTINE)
    replace_where(all_rejected, uri, predicate, ["ingest_date"])
    counts = {
        r["source"]: r["n"]
        for r in spark.read.format("delta").load(uri).where(predicate).groupBy("source").agg(F.count("*").alias("n")).collect()
    }
    for source, n in sorted(counts.items()):
        log.warning("quarantined %d %s row(s) for %s..%s (see %s)", n, source, start, end, uri)
    return {"quarantined": counts}


def run_step(job: StepRun):
    """The pipeline's ``validate`` step (churn/core/pipelines.yaml)."""
    return run(job.spark, job.settings, job.start, job.end)


def main(argv: list[str] | None = None) -> int:
    return spark_step_main("validate", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
