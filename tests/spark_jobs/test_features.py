"""Feature functions on small hand-made silver tables: exact windows, point-in-time, labels."""

import datetime as dt

import pytest

from churn.core.feature_defs import FEATURE_NAMES, DTYPES
from spark_jobs.features import compute_features, label_rows, snapshot_frame
from churn.core.sources import SOURCES

pytestmark = pytest.mark.slow

D = dt.date(2026, 3, 31)


def day(offset: int) -> dt.date:
    return D + dt.timedelta(days=offset)


def frame(spark, source, rows):
    """A silver-shaped DataFrame: the contract's columns plus ingest lineage."""
    cols = SOURCES[source].columns
    schema = ", ".join(f"{c} {t}" for c, t in cols.items()) + ", _ingest_date date, _first_ingest_date date"
    full = []
    for r in rows:
        ingest = r.pop("_ingest_date", None)
        event = r.get(SOURCES[source].event_time)
        ingest = ingest or event
        full.append(tuple(r.get(c) for c in cols) + (ingest, r.pop("_first_ingest_date", ingest)))
    return spark.createDataFrame(full, schema)


def profile(cid, updated, **kw):
    base = dict(customer_id=cid, gender="Female", senior_citizen=0, partner="No", dependents="No",
                signup_date=day(-400), contract="Month-to-month", phone_service="Yes", multiple_lines="No",
                internet_service="DSL", online_security="No", online_backup="No", device_protection="No",
                tech_support="No", streaming_tv="No", streaming_movies="No", paperless_billing="Yes",
                payment_method="Electronic check", monthly_charges=70.0, region="North", updated_at=updated)
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def tables(spark):
    customers = frame(spark, "customers", [
        profile("A", day(-100)),
        profile("A", day(2), contract="Two year"),  # a change after D: must not show on D
        profile("B", day(-100)),
        profile("C", day(-100), signup_date=day(-45)),
        profile("E", day(1), signup_date=day(1)),  # signs up after D
    ])
    usage_rows = [(-95, 99), (-90, 1), (-89, 2), (-30, 4), (-29, 8), (-7, 16), (-6, 32), (0, 64), (1, 1000)]
    usage = frame(spark, "usage", [
        dict(customer_id="A", usage_date=day(o), sessions=s, data_mb=10.0 * s, minutes=s) for o, s in usage_rows
    ] + [
        # happened on D-2 but only exported after D: not known on D
        dict(customer_id="C", usage_date=day(-2), sessions=5, data_mb=1.0, minutes=1, _ingest_date=day(1)),
    ])
    invoices = frame(spark, "invoices", [
        dict(invoice_id="i1", customer_id="A", issued_date=day(-20), due_date=day(-6), amount=50.0,
             paid_date=None, paid_amount=None, updated_at=day(-20)),  # overdue on D
        dict(invoice_id="i2", customer_id="A", issued_date=day(-50), due_date=day(-36), amount=40.0,
             paid_date=day(-30), paid_amount=40.0, updated_at=day(-30)),  # paid 6 days late
        dict(invoice_id="i3", customer_id="B", issued_date=day(-10), due_date=day(-3), amount=30.0,
             paid_date=day(3), paid_amount=30.0, updated_at=day(3), _first_ingest_date=day(-10)),  # paid after D
        dict(invoice_id="i4", customer_id="C", issued_date=day(-200), due_date=day(-186), amount=99.0,
             paid_date=day(-150), paid_amount=99.0, updated_at=day(-150)),  # out of the window
    ])
    tickets = frame(spark, "tickets", [
        dict(ticket_id="t1", customer_id="A", category="billing", opened_at=day(-3), resolved_at=day(1), updated_at=day(1),
             _first_ingest_date=day(-3)),
        dict(ticket_id="t2", customer_id="A", category="network", opened_at=day(-60), resolved_at=day(-58), updated_at=day(-58)),
        dict(ticket_id="t3", customer_id="A", category="billing", opened_at=day(1), resolved_at=None, updated_at=day(1)),
    ])
    changes = frame(spark, "plan_changes", [
        dict(change_id="p1", customer_id="A", change_date=day(-10), change_type="remove_service",
             old_contract="Month-to-month", new_contract="Month-to-month", old_monthly_charges=80.0, new_monthly_charges=70.0),
        dict(change_id="p2", customer_id="A", change_date=day(2), change_type="contract_upgrade",
             old_contract="Month-to-month", new_contract="Two year", old_monthly_charges=70.0, new_monthly_charges=65.0),
    ])
    cancellations = frame(spark, "cancellations", [
        dict(customer_id="B", cancel_date=day(-1), reason="price"),
        dict(customer_id="C", cancel_date=day(5), reason="competitor"),
    ])
    return dict(customers=customers, usage=usage, invoices=invoices, tickets=tickets, plan_changes=changes,
                cancellations=cancellations)


@pytest.fixture(scope="module")
def rows(spark, tables):
    df = compute_features(tables["customers"], tables["usage"], tables["invoices"], tables["tickets"],
                          tables["plan_changes"], tables["cancellations"], snapshot_frame(spark, [D, day(-30)]))
    return {(r["customer_id"], r["snapshot_date"]): r.asDict() for r in df.collect()}, df


def test_schema_is_the_feature_definitions(rows):
    _, df = rows
    assert df.columns == ["customer_id", "snapshot_date", *FEATURE_NAMES]
    types = dict(df.dtypes)
    assert all(types[n] == DTYPES[n] for n in FEATURE_NAMES)


def test_active_customers_only(rows):
    r, _ = rows
    on_d = sorted(c for c, d in r if d == D)
    assert on_d == ["A", "C"]  # B cancelled before D, E signed up after D; C cancels later
    assert ("B", day(-30)) in r  # but B was active a month earlier


def test_usage_windows_are_exact_and_stop_at_d(rows):
    a = rows[0][("A", D)]
    assert a["sessions_7d"] == 32 + 64  # D-6..D: D-7 is outside
    assert a["sessions_30d"] == 8 + 16 + 32 + 64  # D-29..D
    assert a["sessions_90d"] == 2 + 4 + 8 + 16 + 32 + 64  # D-89..D: not D-90, not D+1
    assert a["data_mb_7d"] == 10.0 * (32 + 64)
    assert a["active_days_30d"] == 4
    # late export: C's usage of D-2 arrived after D, so D knows nothing of it
    assert rows[0][("C", D)]["sessions_90d"] == 0


def test_profile_is_as_of_d(rows):
    assert rows[0][("A", D)]["contract"] == "Month-to-month"
    assert rows[0][("A", D)]["tenure_months"] == pytest.approx(400 / 30.4, abs=0.3)


def test_billing_as_of_d(rows):
    a = rows[0][("A", D)]
    assert a["invoices_90d"] == 2
    assert a["late_invoices_90d"] == 2  # i1 overdue on D, i2 paid late
    assert a["max_days_late_90d"] == 6
    assert a["overdue_amount"] == 50.0
    assert rows[0][("C", D)]["invoices_90d"] == 0


def test_tickets_and_changes_as_of_d(rows):
    a = rows[0][("A", D)]
    assert a["tickets_30d"] == 1 and a["tickets_90d"] == 2
    assert a["open_tickets"] == 1  # t1 resolved only after D; t3 opened after D
    assert a["billing_tickets_90d"] == 1 and a["technical_tickets_90d"] == 1
    assert a["plan_changes_90d"] == 1 and a["downgrades_90d"] == 1
    assert a["charge_change_90d"] == -10.0
    assert a["days_since_last_change"] == 10


def test_an_event_after_d_never_changes_ds_row(spark, tables, rows):
    """Add more events after D to every table: D's rows stay identical."""
    later = dict(tables)
    later["usage"] = tables["usage"].unionByName(frame(spark, "usage", [
        dict(customer_id="A", usage_date=day(3), sessions=777, data_mb=1.0, minutes=1)]))
    later["cancellations"] = tables["cancellations"].unionByName(frame(spark, "cancellations", [
        dict(customer_id="A", cancel_date=day(4), reason="price")]))
    later["tickets"] = tables["tickets"].unionByName(frame(spark, "tickets", [
        dict(ticket_id="t9", customer_id="C", category="billing", opened_at=day(2), resolved_at=None, updated_at=day(2))]))
    again = compute_features(later["customers"], later["usage"], later["invoices"], later["tickets"],
                             later["plan_changes"], later["cancellations"], snapshot_frame(spark, [D]))
    assert {r["customer_id"]: r.asDict() for r in again.collect()} == {c: v for (c, d), v in rows[0].items() if d == D}


def test_labels_follow_the_horizon(spark, tables, rows):
    _, df = rows
    labels = {(r["customer_id"], r["snapshot_date"]): r["churned"]
              for r in label_rows(df, tables["cancellations"], day(10), 7).collect()}
    assert labels[("C", D)] == 1  # cancels on D+5, within 7 days
    assert labels[("A", D)] == 0
    assert labels[("B", day(-30))] == 0  # B cancelled on D-1: 29 days after that snapshot
    longer = {(r["customer_id"], r["snapshot_date"]): r["churned"]
              for r in label_rows(df, tables["cancellations"], day(40), 30).collect()}
    assert longer[("B", day(-30))] == 1
