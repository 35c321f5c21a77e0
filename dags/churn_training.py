"""churn_training: weekly, on a retrain request, or by hand: train a challenger and let the gate decide.

Builds the training window from the run's date (the 180 days up to it; training uses the
snapshots in it whose labels exist), hands the run to the Kubeflow training pipeline (local
profile: the same pipeline with kfp's local runner; kubernetes profile: ``churn pipeline submit`` to
the KFP endpoint in ``CHURN_KFP_HOST``), then reports which version is champion and
the latest promotion decisions.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from airflow.sdk import DAG, Asset, chain
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Airflow 3 does not put the dags folder on sys.path
from churn_dags import DEFAULT_ARGS, PROFILE, step  # noqa: E402

# The 180 days up to the run's date. A run the retrain request's Asset triggers has no logical date
# (Airflow 3): its date is when it was due to run (dag_run.run_after), as a weekly run's is.
DAY = "(dag_run.logical_date or dag_run.run_after) | ds"
WINDOW = f"--start {{{{ macros.ds_add({DAY}, -180) }}}} --end {{{{ {DAY} }}}}"
# the pipeline tunes before it trains, within the budget of the CHURN_TUNE_* settings
TUNE = "--tune"
# in a cluster the run goes to Kubeflow Pipelines; on one machine kfp's local runner runs it
HANDOFF = "submit" if PROFILE == "kubernetes" else "run-local"

with DAG(
    dag_id="churn_training",
    description="Train, evaluate, register and gate a churn model through the Kubeflow pipeline",
    # Sundays 04:00 UTC, and whenever the nightly's monitor requests a retrain (an event of the Asset
    # churn_retrain_request: drift or realized performance; the platform applies the cooldown before
    # it emits one). Trigger it by hand for any other off-cycle retrain.
    # No start_date: the weekly part starts with the next Sunday after the DAG is deployed (with a
    # start_date, unpausing it would at once run the Sunday just gone: a training nobody asked for).
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 4 * * 0", timezone="UTC", run_immediately=False),
                                 assets=[Asset(name="churn_retrain_request")]),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["churn"],
    doc_md=__doc__,
) as dag:
    chain(
        step("train_pipeline", "churn", "pipeline", HANDOFF, WINDOW, TUNE, timeout=dt.timedelta(hours=4),
             doc="Kubeflow training pipeline: prepare data -> tune -> train -> evaluate -> gate/promote."),
        step("report_decision", "churn", "models", "history", timeout=dt.timedelta(minutes=10),
             doc="Which version is champion now, and every promotion decision with its reasons."),
    )
