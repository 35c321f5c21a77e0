"""Contracts of the raw sources: the operational exports the platform ingests.

One entry per source says the export's file format, its columns and their types once parsed, the
natural key silver de-duplicates and merges on, and the column that carries the event time (used
for point-in-time correctness). The generator writes exactly these columns; ingest rejects a drop
whose files lack one; silver casts to these types. The validation suites in
``spark_jobs/expectations/`` state the rules on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from churn.core.errors import InputError

CONTRACTS = ("Month-to-month", "One year", "Two year")
INTERNET = ("DSL", "Fiber optic", "No")
PAYMENT_METHODS = ("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)")
REGIONS = ("North", "South", "East", "West", "Central", "Coast")
TICKET_CATEGORIES = ("billing", "technical", "network", "account", "cancellation_inquiry")
CANCEL_REASONS = ("price", "competitor", "service_quality", "moved", "no_longer_needed", "other")


@dataclass(frozen=True)
class Source:
    name: str
    fmt: str  # "csv" or "json" (JSON lines)
    #: column -> Spark SQL type after parsing ("string", "date", "int", "double", "boolean")
    columns: dict[str, str]
    key: tuple[str, ...]
    event_time: str
    #: column whose value orders versions of the same key (later wins), e.g. a ticket's update time
    version: str
    #: columns a JSON export may omit when every record of a drop has them null
    optional: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return list(self.columns)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "customers",
            "csv",
            {
                "customer_id": "string",
                "gender": "string",
                "senior_citizen": "int",
                "partner": "string",
                "dependents": "string",
                "signup_date": "date",
                "contract": "string",
                "phone_service": "string",
                "multiple_lines": "string",
                "internet_service": "string",
                "online_security": "string",
                "online_backup": "string",
                "device_protection": "string",
                "tech_support": "string",
                "streaming_tv": "string",
                "streaming_movies": "string",
                "paperless_billing": "string",
                "payment_method": "string",
                "monthly_charges": "double",
                "region": "string",
                "updated_at": "date",
            },
            key=("customer_id", "updated_at"),
            event_time="updated_at",
            version="updated_at",
        ),
        Source(
            "usage",
            "csv",
            {
                "customer_id": "string",
                "usage_date": "date",
                "sessions": "int",
                "data_mb": "double",
                "minutes": "int",
            },
            key=("customer_id", "usage_date"),
            event_time="usage_date",
            version="usage_date",
        ),
        Source(
            "invoices",
            "json",
            {
                "invoice_id": "string",
                "customer_id": "string",
                "issued_date": "date",
                "due_date": "date",
                "amount": "double",
                "paid_date": "date",
                "paid_amount": "double",
                "updated_at": "date",
            },
            key=("invoice_id",),
            event_time="updated_at",
            version="updated_at",
            optional=("paid_date", "paid_amount"),
        ),
        Source(
            "tickets",
            "json",
            {
                "ticket_id": "string",
                "customer_id": "string",
                "category": "string",
                "opened_at": "date",
                "resolved_at": "date",
                "updated_at": "date",
            },
            key=("ticket_id",),
            event_time="updated_at",
            version="updated_at",
            optional=("resolved_at",),
        ),
        Source(
            "plan_changes",
            "csv",
            {
                "change_id": "string",
                "customer_id": "string",
                "change_date": "date",
                "change_type": "string",
                "old_contract": "string",
                "new_contract": "string",
                "old_monthly_charges": "double",
                "new_monthly_charges": "double",
            },
            key=("change_id",),
            event_time="change_date",
            version="change_date",
        ),
        Source(
            "cancellations",
            "csv",
            {
                "customer_id": "string",
                "cancel_date": "date",
                "reason": "string",
            },
            key=("customer_id",),
            event_time="cancel_date",
            version="cancel_date",
        ),
    )
}

DATE_FORMAT = "yyyy-MM-dd"

#: A drop folder (``<raw>/<source>/ingest_date=D``) is complete when this marker is in it. The
#: exporter writes it last (Hadoop's ``_SUCCESS`` convention), holding each data file's row count:
#: ``{"source": "usage", "ingest_date": "2026-03-01", "files": {"part-0000.csv": 4120}, "rows": 4120}``.
#: Files whose names start with ``_`` are not data: Spark's readers skip them.
MARKER = "_SUCCESS"


def marker_json(source: str, date: str, files: dict[str, int]) -> str:
    """The completion marker of one drop: every data file and its number of records."""
    return json.dumps({"source": source, "ingest_date": date, "files": dict(sorted(files.items())),
                       "rows": sum(files.values())}, indent=1)


def parse_marker(text: str, where: str) -> dict[str, int]:
    """A marker's files and row counts; a clear error naming the marker when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"drop marker {where} is not JSON ({exc}); expected "
                         '{"files": {"part-0000.csv": ROWS, ...}}') from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in files.items()):
        raise InputError(f"drop marker {where}: field 'files' must map each data file's name to its row count "
                         "(an integer >= 0)")
    return files


#: What can go wrong in a real export, as the simulator injects it (``churn generate --defects``);
#: validation must catch each of them (tests/spark_jobs/test_lakehouse.py).
DEFECT_KINDS = ("nulls", "duplicates", "bad_dates", "unknown_categories", "late_rows", "future_dates")
#: How the simulator injects them: corrupting true rows, or as corrupted extra copies of true rows.
DEFECT_MODES = ("replace", "add")
#: Drift events the simulator can start on a date (``churn generate --drift``).
DRIFT_KINDS = ("price_rise", "competitor")
