"""The platform's customer features as data: names, types, descriptions, valid ranges.

No Spark here, so the online predictor (and anything else outside a Spark job) can read them;
``spark_jobs.features`` computes them for a snapshot date D. Descriptions are what a CRM agent reads
next to a score, so they speak of "the last N days" rather than of D.
"""

from __future__ import annotations

from dataclasses import dataclass


#: The two kinds of feature (a column's ``churn.kind`` metadata, a model's preprocessing).
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # Spark SQL type of the column in gold/customer_features
    kind: str  # CATEGORICAL or NUMERIC
    description: str
    #: Valid range of a numeric feature (None: unbounded); the online API refuses values outside it.
    minimum: float | None = None
    maximum: float | None = None


def _cat(name: str, description: str) -> Feature:
    return Feature(name, "string", CATEGORICAL, description)


def _num(name: str, description: str, dtype: str = "double", minimum: float | None = 0.0,
         maximum: float | None = None) -> Feature:
    return Feature(name, dtype, NUMERIC, description, minimum, maximum)


FEATURES: tuple[Feature, ...] = (
    # profile, as of D
    _cat("gender", "Customer gender"),
    _num("senior_citizen", "1 if the customer is a senior citizen", "int", maximum=1),
    _cat("partner", "Has a partner (Yes/No)"),
    _cat("dependents", "Has dependents (Yes/No)"),
    _cat("contract", "Contract type"),
    _cat("phone_service", "Phone service"),
    _cat("multiple_lines", "Multiple lines"),
    _cat("internet_service", "Internet service type"),
    _cat("online_security", "Online security add-on"),
    _cat("online_backup", "Online backup add-on"),
    _cat("device_protection", "Device protection add-on"),
    _cat("tech_support", "Tech support add-on"),
    _cat("streaming_tv", "Streaming TV add-on"),
    _cat("streaming_movies", "Streaming movies add-on"),
    _cat("paperless_billing", "Paperless billing"),
    _cat("payment_method", "Payment method"),
    _cat("region", "Sales region"),
    _num("monthly_charges", "Monthly charges"),
    _num("tenure_months", "Months since signup"),
    # usage windows and trends
    _num("sessions_7d", "Sessions in the last 7 days"),
    _num("sessions_30d", "Sessions in the last 30 days"),
    _num("sessions_90d", "Sessions in the last 90 days"),
    _num("data_mb_7d", "Data used (MB) in the last 7 days"),
    _num("data_mb_30d", "Data used (MB) in the last 30 days"),
    _num("data_mb_90d", "Data used (MB) in the last 90 days"),
    _num("minutes_7d", "Call minutes in the last 7 days"),
    _num("minutes_30d", "Call minutes in the last 30 days"),
    _num("minutes_90d", "Call minutes in the last 90 days"),
    _num("active_days_30d", "Days with at least one session in the last 30 days"),
    _num("sessions_trend_7_30", "Daily sessions over the last 7 days / over the last 30 days"),
    _num("sessions_trend_30_90", "Daily sessions over the last 30 days / over the last 90 days"),
    _num("data_trend_7_30", "Daily data over the last 7 days / over the last 30 days"),
    # billing
    _num("invoices_90d", "Invoices issued in the last 90 days"),
    _num("late_invoices_90d", "Invoices of the last 90 days paid late or still overdue"),
    _num("max_days_late_90d", "Largest payment delay in the last 90 days (days past due)"),
    _num("overdue_amount", "Unpaid amount past its due date"),
    # support
    _num("tickets_30d", "Support tickets opened in the last 30 days"),
    _num("tickets_90d", "Support tickets opened in the last 90 days"),
    _num("open_tickets", "Support tickets still open"),
    _num("billing_tickets_90d", "Billing tickets in the last 90 days"),
    _num("technical_tickets_90d", "Technical and network tickets in the last 90 days"),
    _num("cancellation_inquiries_90d", "Cancellation inquiries in the last 90 days"),
    # plan changes
    _num("plan_changes_90d", "Plan changes in the last 90 days"),
    _num("downgrades_90d", "Contract downgrades and removed services in the last 90 days"),
    _num("charge_change_90d", "Net change of monthly charges through plan changes in the last 90 days",
         minimum=None),
    _num("days_since_last_change", "Days since the last plan change (365 when none in the last year)",
         maximum=365),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == CATEGORICAL)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == NUMERIC)
DTYPES: dict[str, str] = {f.name: f.dtype for f in FEATURES}
KEY_COLUMNS = ("customer_id", "snapshot_date")

#: Customer segments the CRM acts on: evaluation reports quality per segment and the promotion gate
#: compares challenger and champion on each (ml/evaluate.py, ml/gate.py). ``tenure_band`` is derived
#: from ``tenure_months`` (``TENURE_BANDS``, months, lower bound inclusive).
SEGMENTS: tuple[str, ...] = ("contract", "region", "tenure_band", "internet_service")
TENURE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-6m", 0, 6), ("6-12m", 6, 12), ("12-24m", 12, 24), ("24-48m", 24, 48), ("48m+", 48, float("inf")),
)
