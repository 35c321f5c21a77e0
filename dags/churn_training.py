"""churn_training: weekly (and on demand), train a challenger and let the gate decide.

Builds the training window from the run's logical date (the 180 days up to it; training uses the
snapshots in it whose labels exist), hands the run to the Kubeflow training pipeline (local
profile: the same pipeline with kfp's local runner; kubernetes profile: ``churn pipeline submit`` to
the KFP endpoint in ``CHURN_KFP_HOST``), then reports which version is champion and
the latest promotion decisions.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import pendulum
from airflow.sdk import DAG, chain
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Airflow 3 does not put the dags folder on sys.path
from churn_dags import DEFAULT_ARGS, PROFILE, step  # noqa: E402

WINDOW = "--start {{ macros.ds_add(ds, -180) }} --end {{ ds }}"
# in a cluster the run goes to Kubeflow Pipelines; on one machine kfp's local runner runs it
HANDOFF = "submit" if PROFILE == "kubernetes" else "run-local"

with DAG(
    dag_id="churn_training",
    description="Train, evaluate, register and gate a churn model through the Kubeflow pipeline",
    schedule="0 4 * * 0",  # Sundays 04:00 UTC; trigger it by hand for an off-cycle retrain
    start_date=pendulum.datetime(2026, 1, 4, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["churn"],
    doc_md=__doc__,
) as dag:
    chain(
        step("train_pipeline", "churn", "pipeline", HANDOFF, WINDOW, timeout=dt.timedelta(hours=4),
             doc="Kubeflow training pipeline: prepare data -> train -> evaluate -> gate/promote."),
        step("report_decision", "churn", "models", "history", timeout=dt.timedelta(minutes=10),
             doc="Which version is champion now, and every promotion decision with its reasons."),
    )
