"""The same jobs, unchanged, against an s3a:// lake on a real S3 endpoint (moto server on loopback)."""

import datetime as dt
import uuid

import pandas as pd
import pytest

from churn.runner import build_lakehouse, run_pipeline
from tests.conftest import BUCKET, generate_base

pytestmark = pytest.mark.slow
D0 = dt.date(2026, 3, 1)


def test_lakehouse_on_s3(spark, make_settings, s3, tmp_path):
    generate_base(tmp_path, 300, D0, 2, seed=3)
    prefix = f"lake-{uuid.uuid4().hex[:8]}"
    # the reports store in the bucket too, as in a cluster (no pod keeps a local folder)
    s = make_settings(tmp_path, lake_uri=f"s3a://{BUCKET}/{prefix}", reports_dir=f"s3://{BUCKET}/{prefix}-reports")
    end = D0 + dt.timedelta(days=1)
    results = build_lakehouse(s, D0, end, spark=spark)
    # the tables are real Delta tables in the bucket
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert any(k.startswith(f"{prefix}/gold/customer_features/_delta_log/") for k in keys)
    assert any(k.startswith(f"{prefix}/bronze/usage/ingest_date={D0}/") for k in keys)
    # the validation's results went to the bucket's reports store, nothing to a local folder
    assert results["validate"]["reports"] == f"s3://{BUCKET}/{prefix}-reports/validation/{D0}_{end}"
    assert f"{prefix}-reports/validation/{D0}_{end}/summary.json" in keys
    assert not (tmp_path / "reports").exists() and not any(p.name.startswith("s3:") for p in tmp_path.iterdir())
    # read back without Spark (delta-rs), as a small tool or a test would
    from deltalake import DeltaTable

    opts = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region, "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    features = DeltaTable(f"s3://{BUCKET}/{prefix}/gold/customer_features", storage_options=opts).to_pandas()
    # clean data: exactly the customers the generator had active on each snapshot date
    for snap in (D0, end):
        oracle = pd.read_parquet(tmp_path / "oracle" / f"snapshot_date={snap}")
        got = features[features.snapshot_date == snap]
        assert sorted(got.customer_id) == sorted(oracle.customer_id)
    # and a rerun of the last date on S3 replaces, never duplicates
    run_pipeline(s, end, end, steps=["ingest", "features"], spark=spark)
    again = DeltaTable(f"s3://{BUCKET}/{prefix}/gold/customer_features", storage_options=opts).to_pandas()
    assert len(again) == len(features)
