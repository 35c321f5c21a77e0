"""churn_nightly: every night, score the whole customer base and publish it for CRM teams.

The steps are the ``nightly`` pipeline declared in ``churn/core/pipelines.yaml`` (db_upgrade ->
wait_for_drops -> ingest -> validate -> silver -> features -> labels -> score -> publish -> monitor,
whose retrain request, if any, becomes an event of the Asset churn_retrain_request), each a
platform command keyed on the run's logical date (``{{ ds }}``) and idempotent for it, so a rerun
or a backfill (``airflow backfill create --dag-id churn_nightly --from-date 2026-01-01 --to-date
2026-02-01 --max-active-runs 1``: the nights of January) replaces exactly its own date. One writer at a time: Delta on S3
allows one, so every lake-writing task runs in the one-slot pool ``churn_lake_writers`` (backfill
runs are not bounded by ``max_active_runs``) and the commands hold the lake's lock.
"""

from __future__ import annotations

import os
import sys

import pendulum
from airflow.sdk import DAG, chain
from airflow.timetables.interval import CronDataIntervalTimetable
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Airflow 3 does not put the dags folder on sys.path
from churn_dags import DEFAULT_ARGS, declaration, pipeline_tasks  # noqa: E402

with DAG(
    dag_id="churn_nightly",
    description=declaration()["pipelines"]["nightly"]["description"],
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
    chain(*pipeline_tasks("nightly"))
