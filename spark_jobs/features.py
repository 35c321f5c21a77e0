"""Feature definitions: the one place the platform's customer features are defined.

``gold/customer_features`` is computed here (``compute_features``), training reads ``FEATURES`` for
the feature list and dtypes, and the online path serves the rows this module produced: no second
implementation of any feature exists.

Point-in-time rule: the row for snapshot date D is computed only from events whose event time is
on or before D (usage date, invoice issue/payment date, ticket open/resolution date, change date,
cancellation date, profile update date) and that were known by D (ingested on or before D; for
entities whose state is updated, such as invoices and tickets, first ingested on or before D). An event
after D can therefore never change D's row, and rebuilding D later gives the same row. One residue:
a state change dated on or before D but exported after D (a payment recorded late) is visible to a
rebuild of D; silver keeps current state, not every version.
"""

from __future__ import annotations

import datetime as dt
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window


from churn.core.feature_defs import FEATURES

PROFILE_COLUMNS = (
    "gender", "senior_citizen", "partner", "dependents", "contract", "phone_service", "multiple_lines",
    "internet_service", "online_security", "online_backup", "device_protection", "tech_support",
    "streaming_tv", "streaming_movies", "paperless_billing", "payment_method", "region", "monthly_charges",
)


def _days_before(d: Column, n: int) -> Column:
    return F.date_sub(d, n - 1)  # window of n days ending on _snap(), inclusive


def _ratio(a: Column, b: Column) -> Column:
    """a / b, null when either is null or b is 0 (no history to compare with)."""
    return F.when(b > 0, F.try_divide(a, b)).otherwise(F.lit(None).cast("double"))


def _snap() -> Column:
    return F.col("snapshot_date")


KEYS = ["customer_id", "snapshot_date"]


def snapshot_frame(spark, dates: list[dt.date]) -> DataFrame:
    """The snapshot dates as a one-column DataFrame (small: broadcast in every join)."""
    return spark.createDataFrame([(d,) for d in sorted(set(dates))], "snapshot_date date")


def _window(events: DataFrame, snapshots: DataFrame, time_col: str, days: int | None) -> DataFrame:
    """Pairs each event with every snapshot it is visible to: time <= _snap() (and within ``days``)."""
    cond = F.col(time_col) <= _snap()
    if days is not None:
        cond = cond & (F.col(time_col) >= _days_before(_snap(), days))
    return events.join(F.broadcast(snapshots), cond)


def profiles_as_of(customers: DataFrame, snapshots: DataFrame) -> DataFrame:
    """Each customer's latest profile version updated and ingested on or before each D."""
    known = _window(customers, snapshots, "updated_at", None).where(F.col("_ingest_date") <= _snap())
    w = Window.partitionBy(*KEYS).orderBy(F.col("updated_at").desc(), F.col("_ingest_date").desc())
    return known.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def active_customers(customers: DataFrame, cancellations: DataFrame, snapshots: DataFrame) -> DataFrame:
    """Profiles of customers signed up on or before _snap() and not cancelled by _snap(), per snapshot D."""
    cancelled = (_window(cancellations, snapshots, "cancel_date", None)
                 .where(F.col("_ingest_date") <= _snap()).select(*KEYS))
    return (
        profiles_as_of(customers, snapshots)
        .where(F.col("signup_date") <= _snap())
        .join(cancelled, KEYS, "left_anti")
    )


def usage_features(usage: DataFrame, snapshots: DataFrame) -> DataFrame:
    u = _window(usage, snapshots, "usage_date", 90).where(F.col("_ingest_date") <= _snap())
    in7 = F.col("usage_date") >= _days_before(_snap(), 7)
    in30 = F.col("usage_date") >= _days_before(_snap(), 30)

    def s(col: str, cond: Column | None = None) -> Column:
        # rounded: a double sum depends on the order rows meet, and a rebuild must be identical
        c = F.col(col).cast("double")
        return F.round(F.sum(F.when(cond, c).otherwise(0.0)) if cond is not None else F.sum(c), 3)

    agg = u.groupBy(*KEYS).agg(
        s("sessions", in7).alias("sessions_7d"),
        s("sessions", in30).alias("sessions_30d"),
        s("sessions").alias("sessions_90d"),
        s("data_mb", in7).alias("data_mb_7d"),
        s("data_mb", in30).alias("data_mb_30d"),
        s("data_mb").alias("data_mb_90d"),
        s("minutes", in7).alias("minutes_7d"),
        s("minutes", in30).alias("minutes_30d"),
        s("minutes").alias("minutes_90d"),
        F.sum(F.when(in30 & (F.col("sessions") > 0), 1.0).otherwise(0.0)).alias("active_days_30d"),
        F.sum(F.when(in7, 1.0).otherwise(0.0)).alias("_days7"),
        F.sum(F.when(in30, 1.0).otherwise(0.0)).alias("_days30"),
        F.count("*").cast("double").alias("_days90"),
    )
    # per-day rates over the days actually observed, so a short history does not read as a fall
    return agg.select(
        "*",
        _ratio(_ratio(F.col("sessions_7d"), F.col("_days7")), _ratio(F.col("sessions_30d"), F.col("_days30")))
        .alias("sessions_trend_7_30"),
        _ratio(_ratio(F.col("sessions_30d"), F.col("_days30")), _ratio(F.col("sessions_90d"), F.col("_days90")))
        .alias("sessions_trend_30_90"),
        _ratio(_ratio(F.col("data_mb_7d"), F.col("_days7")), _ratio(F.col("data_mb_30d"), F.col("_days30")))
        .alias("data_trend_7_30"),
    ).drop("_days7", "_days30", "_days90")


def billing_features(invoices: DataFrame, snapshots: DataFrame) -> DataFrame:
    inv = _window(invoices, snapshots, "issued_date", 90).where(F.col("_first_ingest_date") <= _snap())
    paid_by_d = F.col("paid_date").isNotNull() & (F.col("paid_date") <= _snap())
    # days late as of D: paid late -> paid - due; unpaid and overdue -> _snap() - due
    days_late = F.when(paid_by_d, F.datediff("paid_date", "due_date")).otherwise(F.datediff(_snap(), F.col("due_date")))
    late = F.greatest(days_late, F.lit(0))
    overdue_unpaid = ~paid_by_d & (F.col("due_date") < _snap())
    return inv.groupBy(*KEYS).agg(
        F.count("*").cast("double").alias("invoices_90d"),
        F.sum(F.when(late > 0, 1.0).otherwise(0.0)).alias("late_invoices_90d"),
        F.max(late).cast("double").alias("max_days_late_90d"),
        F.round(F.sum(F.when(overdue_unpaid, F.col("amount")).otherwise(0.0)), 2).alias("overdue_amount"),
    )


def ticket_features(tickets: DataFrame, snapshots: DataFrame) -> DataFrame:
    t = _window(tickets, snapshots, "opened_at", 365).where(F.col("_first_ingest_date") <= _snap())
    in30 = F.col("opened_at") >= _days_before(_snap(), 30)
    in90 = F.col("opened_at") >= _days_before(_snap(), 90)
    is_open = F.col("resolved_at").isNull() | (F.col("resolved_at") > _snap())

    def cnt(cond: Column) -> Column:
        return F.sum(F.when(cond, 1.0).otherwise(0.0))

    return t.groupBy(*KEYS).agg(
        cnt(in30).alias("tickets_30d"),
        cnt(in90).alias("tickets_90d"),
        cnt(is_open).alias("open_tickets"),
        cnt(in90 & (F.col("category") == "billing")).alias("billing_tickets_90d"),
        cnt(in90 & F.col("category").isin("technical", "network")).alias("technical_tickets_90d"),
        cnt(in90 & (F.col("category") == "cancellation_inquiry")).alias("cancellation_inquiries_90d"),
    )


def plan_change_features(changes: DataFrame, snapshots: DataFrame) -> DataFrame:
    c = _window(changes, snapshots, "change_date", 365).where(F.col("_ingest_date") <= _snap())
    in90 = F.col("change_date") >= _days_before(_snap(), 90)
    return c.groupBy(*KEYS).agg(
        F.sum(F.when(in90, 1.0).otherwise(0.0)).alias("plan_changes_90d"),
        F.sum(F.when(in90 & F.col("change_type").isin("contract_downgrade", "remove_service"), 1.0)
              .otherwise(0.0)).alias("downgrades_90d"),
        F.round(F.sum(F.when(in90, F.col("new_monthly_charges") - F.col("old_monthly_charges")).otherwise(0.0)), 2)
        .alias("charge_change_90d"),
        F.datediff(_snap(), F.max("change_date")).cast("double").alias("days_since_last_change"),
    )


_ZERO_WHEN_ABSENT = [f.name for f in FEATURES if f.kind == "numeric" and f.name not in PROFILE_COLUMNS
                     and f.name not in ("tenure_months", "sessions_trend_7_30", "sessions_trend_30_90",
                                        "data_trend_7_30", "days_since_last_change", "max_days_late_90d")]


def compute_features(
    customers: DataFrame,
    usage: DataFrame,
    invoices: DataFrame,
    tickets: DataFrame,
    plan_changes: DataFrame,
    cancellations: DataFrame,
    snapshots: DataFrame,
) -> DataFrame:
    """One row per customer active on each snapshot date, with every column of ``FEATURES``.

    Inputs are the silver tables (typed, de-duplicated, with ``_ingest_date``) and a DataFrame of
    snapshot dates (``snapshot_frame``); all dates are computed in one pass. Pure: no I/O.
    """
    base = active_customers(customers, cancellations, snapshots).select(
        *KEYS, *PROFILE_COLUMNS,
        F.round(F.months_between(_snap(), F.col("signup_date")), 2).alias("tenure_months"),
    )
    out = (
        base.join(usage_features(usage, snapshots), KEYS, "left")
        .join(billing_features(invoices, snapshots), KEYS, "left")
        .join(ticket_features(tickets, snapshots), KEYS, "left")
        .join(plan_change_features(plan_changes, snapshots), KEYS, "left")
        .fillna(0.0, subset=_ZERO_WHEN_ABSENT)
        .fillna({"max_days_late_90d": 0.0, "days_since_last_change": 365.0})
    )
    return out.select(*KEYS, *[F.col(f.name).cast(f.dtype).alias(f.name) for f in FEATURES])


def label_rows(features: DataFrame, cancellations: DataFrame, known_by: dt.date, horizon_days: int) -> DataFrame:
    """Labels for feature rows: 1 if the customer's cancellation date falls in (S, S + horizon].

    ``features`` holds (customer_id, snapshot_date) of snapshots whose horizon ended on or before
    ``known_by``; only cancellations ingested by ``known_by`` count.
    """
    k = F.lit(known_by).cast("date")
    cancels = cancellations.where(F.col("_ingest_date") <= k).select("customer_id", "cancel_date")
    joined = features.select("customer_id", "snapshot_date").join(cancels, "customer_id", "left")
    in_horizon = (F.col("cancel_date") > F.col("snapshot_date")) & (
        F.col("cancel_date") <= F.date_add(F.col("snapshot_date"), horizon_days)
    )
    return joined.select(
        "customer_id",
        "snapshot_date",
        F.when(in_horizon, 1).otherwise(0).cast("int").alias("churned"),
        F.when(in_horizon, F.col("cancel_date")).alias("cancel_date"),
        F.lit(horizon_days).alias("horizon_days"),
        k.alias("labeled_on"),
    )
