"""churn_nightly: every night, score the whole customer base and publish it for CRM teams.

db_upgrade -> ingest -> validate -> silver -> features -> labels -> score -> publish, each a platform
command keyed on the run's logical date (``{{ ds }}``) and idempotent for it, so a rerun or a
backfill (``airflow backfill create --dag-id churn_nightly --from-date 2026-01-01 --to-date
2026-01-31``) replaces exactly its own date. One run at a time: Delta on S3 allows one writer.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import pendulum
from airflow.sdk import DAG, Asset, chain
from airflow.timetables.interval import CronDataIntervalTimetable
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Airflow 3 does not put the dags folder on sys.path
from churn_dags import DEFAULT_ARGS, published_scores_uri, step  # noqa: E402

LAKE = os.environ.get("CHURN_LAKE_URI", "file:///churn/lake").rstrip("/")
FEATURES = Asset(name="churn_customer_features", uri=f"{LAKE}/gold/customer_features")
SCORES = Asset(name="churn_published_scores", uri=published_scores_uri())
DATE = "--date {{ ds }}"

with DAG(
    dag_id="churn_nightly",
    description="Nightly lakehouse build, scoring with the champion and publishing to PostgreSQL",
    # The run for day D covers D's data interval and starts at 02:00 UTC on D+1, once D's exports
    # have landed; {{ ds }} is D. (A bare cron string would make D's run start on D itself.)
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # backfills are explicit: `airflow backfill create`
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["churn"],
    doc_md=__doc__,
) as dag:
    chain(
        step("db_upgrade", "churn", "db upgrade", timeout=dt.timedelta(minutes=10),
             doc="Apply pending PostgreSQL migrations (idempotent); fails fast when the database is unreachable."),
        step("ingest", "spark_jobs.ingest", DATE, doc="Raw exports of the date -> bronze (replaceWhere)."),
        step("validate", "spark_jobs.validate", DATE,
             doc="Great Expectations suites; failing rows to quarantine, a failed rule stops the run."),
        step("silver", "spark_jobs.silver", DATE, doc="MERGE the valid rows into silver on natural keys."),
        step("features", "spark_jobs.build_features", DATE, outlets=[FEATURES],
             doc="Point-in-time features of every active customer on the date."),
        step("labels", "spark_jobs.labels", DATE, doc="Labels of the snapshots whose horizon closed."),
        step("score", "spark_jobs.score", DATE, doc="The champion scores every active customer: probability, "
             "decile, band, top 3 reasons -> gold/customer_scores."),
        step("publish", "churn", "publish", DATE, outlets=[SCORES], timeout=dt.timedelta(minutes=30),
             doc="COPY into a new table, reconcile, attach it as the date's partition of churn.customer_scores in one transaction."),
    )
