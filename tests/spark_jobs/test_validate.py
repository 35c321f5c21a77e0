"""GX's two engines give the same verdicts: the validate step hands small batches to GX's pandas
engine and large ones to its Spark engine (CHURN_VALIDATION_PANDAS_MAX_ROWS), so both must judge a
batch alike, failures and their messages included. Checked on the session lakehouse's bronze rows,
defects and all."""

import datetime as dt

import pytest
from pyspark.sql import functions as F

from spark_jobs.common import read_delta
from spark_jobs.validate import GXValidator, failures, validation_frame
from tests.conftest import LAKE_PHASE_A_END, ML_D0

pytestmark = pytest.mark.slow


def verdicts(result: dict) -> list[tuple]:
    out = []
    for r in result["results"]:
        res = r.get("result") or {}
        out.append((r["expectation_config"]["type"], str(r["expectation_config"]["kwargs"].get("column")), r["success"],
                    res.get("element_count"), res.get("unexpected_count"), res.get("observed_value")))
    return out


@pytest.mark.parametrize("source, days", [("cancellations", 34), ("customers", 6)])
def test_the_pandas_and_spark_engines_judge_a_batch_alike(spark, lakehouse, source, days):
    s = lakehouse.settings
    bronze = read_delta(spark, s.table_uri("bronze", source), source, "").where(
        F.col("ingest_date").between(ML_D0, min(LAKE_PHASE_A_END, ML_D0 + dt.timedelta(days=days))))
    batch = validation_frame(bronze).cache()
    rows = batch.count()
    both = GXValidator(None, pandas_max_rows=rows)
    on_spark = GXValidator(None, pandas_max_rows=rows - 1)
    assert (both.engine(rows), on_spark.engine(rows)) == ("pandas", "spark")
    by_pandas, by_spark = both.validate(batch, source, rows), on_spark.validate(batch, source, rows)
    batch.unpersist()
    assert verdicts(by_pandas) == verdicts(by_spark)
    assert any(v[4] for v in verdicts(by_spark)), "the batch should hold rows some rule rejects"
    assert failures(by_pandas, source) == failures(by_spark, source)
