"""The lakehouse over real local Spark, on the session's generated base with every kind of defect
(tests/conftest.py `lakehouse`: built in two batches of nights, as nightly runs would arrive).

Checked: counts, unique keys, quarantine, labels only for closed horizons, point-in-time rebuilds
and idempotent reruns. The reruns here replace what they rewrite with equal rows, so the tables the
ML tests read stay as they were.
"""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from churn.core.lake import delta_table
from churn.core.sources import SOURCES
from churn.runner import build_lakehouse, run_pipeline
from tests.conftest import LAKE_PHASE_A_END, ML_D0 as D0, ML_DAYS as DAYS, ML_HORIZON as HORIZON

pytestmark = pytest.mark.slow


def d(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def table(spark, settings, layer, name):
    return spark.read.format("delta").load(settings.table_uri(layer, name))


def version(spark, settings, layer, name) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, settings.table_uri(layer, name)).history(1).first()["version"]


def rows_of(df):
    return sorted(tuple(r) for r in df.orderBy("customer_id").collect())


@pytest.fixture(scope="module")
def lake(lakehouse):
    return dict(home=lakehouse.home, settings=lakehouse.settings, manifest=lakehouse.manifest,
                after_a=lakehouse.after_phase_a)


def test_bronze_holds_every_exported_row(spark, lake):
    s, m = lake["settings"], lake["manifest"]
    for source in SOURCES:
        bronze = table(spark, s, "bronze", source)
        assert bronze.count() == m.rows[source], source
        assert bronze.select("ingest_date").distinct().count() == DAYS or source != "usage"


def test_silver_has_unique_natural_keys_and_no_rejected_rows(spark, lake):
    s = lake["settings"]
    for name, source in SOURCES.items():
        silver = table(spark, s, "silver", name)
        assert silver.count() == silver.select(*source.key).distinct().count(), name
        assert silver.where(" OR ".join(f"{k} IS NULL" for k in source.key)).count() == 0
    bad = table(spark, s, "silver", "usage").where("sessions IS NULL OR usage_date > _ingest_date").count()
    assert bad == 0


def test_quarantine_catches_each_injected_defect(spark, lake):
    s = lake["settings"]
    q = table(spark, s, "quarantine", "rejected_rows")
    reasons = {r["reason"]: r["n"] for r in q.select(F.explode("reasons").alias("reason"))
               .groupBy("reason").agg(F.count("*").alias("n")).collect()}
    raw = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in (lake["home"] / "raw" / "usage").rglob("*.csv"))
    assert reasons["missing_sessions"] == (raw.sessions == "").sum()
    assert reasons["malformed_date_usage_date"] == (raw.usage_date == "31/02/2026").sum()
    assert reasons["unknown_payment_method"] > 0 and reasons["unknown_category"] > 0
    assert reasons["usage_date_after_ingest_date"] > 0
    record = json.loads(q.where(F.array_contains("reasons", "missing_sessions")).first()["record"])
    assert record["sessions"] is None and record["customer_id"].startswith("C")
    # the validation results are kept as JSON and as GX data docs
    reports = Path(s.reports_dir) / "validation"
    assert json.loads((reports / f"{d(0)}_{LAKE_PHASE_A_END}" / "usage.json").read_text())["success"] is True
    assert (reports / "data_docs" / "index.html").exists()


def test_features_one_row_per_active_customer_per_snapshot(spark, lake):
    s = lake["settings"]
    f = table(spark, s, "gold", "customer_features")
    snapshots = sorted(r[0] for r in f.select("snapshot_date").distinct().collect())
    # weekly in each batch of nights, each batch's last night included
    assert snapshots == [d(0), d(7), d(14), d(21), d(28), d(34), d(35), d(42), d(49), d(56), d(63), d(DAYS - 1)]
    assert f.count() == f.select("customer_id", "snapshot_date").distinct().count()
    # the generator's oracle lists exactly who was active each day; defects may drop a few profiles
    for snap in (d(7), d(28)):
        oracle = pd.read_parquet(lake["home"] / "oracle" / f"snapshot_date={snap}")
        got = f.where(F.col("snapshot_date") == snap).count()
        assert abs(got - len(oracle)) <= 0.03 * len(oracle), (snap, got, len(oracle))
    meta = {fld.name: fld.metadata for fld in f.schema.fields}
    assert meta["contract"]["churn.kind"] == "categorical" and meta["sessions_30d"]["churn.kind"] == "numeric"


def test_labels_only_for_closed_horizons(spark, lake):
    s = lake["settings"]
    labels = table(spark, s, "gold", "labels")
    labelled = sorted(r[0] for r in labels.select("snapshot_date").distinct().collect())
    # run date 69: every snapshot S with S + 14 <= 69 and nothing later
    assert labelled == [d(0), d(7), d(14), d(21), d(28), d(34), d(35), d(42), d(49)]
    assert labels.count() == labels.select("customer_id", "snapshot_date").distinct().count()
    features = table(spark, s, "gold", "customer_features").where(F.col("snapshot_date").isin(labelled))
    assert labels.count() == features.count()
    # the label is the generated truth: a cancellation within (S, S + 14]
    cancels = pd.concat(pd.read_csv(p, dtype=str) for p in (lake["home"] / "raw" / "cancellations").rglob("*.csv"))
    cancels = cancels[cancels.cancel_date.str.match(r"^\d{4}-\d{2}-\d{2}$", na=False)]
    cancel_on = dict(zip(cancels.customer_id, pd.to_datetime(cancels.cancel_date).dt.date))
    sample = labels.where(F.col("snapshot_date") == d(7)).collect()
    expected = {r["customer_id"]: int(d(7) < cancel_on.get(r["customer_id"], dt.date.max) <= d(7 + HORIZON)) for r in sample}
    got = {r["customer_id"]: r["churned"] for r in sample}
    mismatches = [(c, got[c], expected[c]) for c in got if got[c] != expected[c]]
    assert len(mismatches) <= 0.01 * len(got) and sum(got.values()) > 5, (mismatches[:5], sum(got.values()))


def test_rebuilding_a_past_snapshot_gives_the_same_rows(spark, lake):
    """Point in time: later drops (including late rows for earlier dates) never change D's rows."""
    s, snap, before = lake["settings"], lake["after_a"]["snapshot"], lake["after_a"]["features"]
    v = delta_table(s, "gold", "customer_features").version()
    run_pipeline(s, snap, snap, steps=["features"], spark=spark)
    table_now = delta_table(s, "gold", "customer_features")
    assert table_now.version() == v + 1  # it did rebuild the snapshot
    again = table_now.to_pandas(filters=[("snapshot_date", "=", snap)])
    key = ["customer_id", "snapshot_date"]
    pd.testing.assert_frame_equal(again.sort_values(key).reset_index(drop=True)[before.columns],
                                  before.sort_values(key).reset_index(drop=True))


def test_rerunning_an_old_date_replaces_exactly_its_rows_and_never_rolls_an_entity_back(spark, lake):
    """A rerun of a past snapshot date, after newer dates were built (a backfill): every table keeps
    its row count, the date's features come back equal, and silver keeps the newest version of each
    entity (a ticket opened that day and resolved later stays resolved)."""
    s = lake["settings"]
    snapshots = {r[0] for r in table(spark, s, "gold", "customer_features").select("snapshot_date").distinct().collect()}
    resolved = (table(spark, s, "silver", "tickets")
                .where(F.col("opened_at").isin(sorted(snapshots)) & (F.col("opened_at") < F.col("resolved_at")))
                .orderBy("opened_at", "ticket_id").first())
    old = resolved["opened_at"]
    names = [("bronze", n) for n in SOURCES] + [("silver", n) for n in SOURCES] + \
            [("gold", "customer_features"), ("gold", "labels"), ("quarantine", "rejected_rows")]
    before = {n: table(spark, s, *n).count() for n in names}
    features_before = rows_of(table(spark, s, "gold", "customer_features").where(F.col("snapshot_date") == old))
    v_before = version(spark, s, "bronze", "usage")
    build_lakehouse(s, old, old, spark=spark)
    after = {n: table(spark, s, *n).count() for n in names}
    assert after == before
    assert version(spark, s, "bronze", "usage") == v_before + 1  # it did write, and replaced
    assert rows_of(table(spark, s, "gold", "customer_features").where(F.col("snapshot_date") == old)) == features_before
    now = table(spark, s, "silver", "tickets").where(F.col("ticket_id") == resolved["ticket_id"]).first()
    assert now["resolved_at"] == resolved["resolved_at"]
    assert now["_first_ingest_date"] == resolved["_first_ingest_date"]
