"""Run with the Airflow environment's Python: `dag.test()` churn_nightly for each date given, in order.

Prints one JSON line (and writes it to $RUN_NIGHTLY_RESULT when set): per run, the logical
date, the run's state and every task's state.
"""

import datetime as dt
import json
import os
import sys

from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.get_dag("churn_nightly")
for task in dag.tasks:  # a test run fails at once: no retry delays (the DAG's own retries are for production)
    task.retries = 0
runs = []
for day in sys.argv[2:]:
    logical = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(2), tzinfo=dt.timezone.utc)  # ds = day
    run = dag.test(logical_date=logical)
    runs.append({"date": day, "state": str(run.state),
                 "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}})
    print(f"churn_nightly {day}: {run.state}", file=sys.stderr, flush=True)
if os.environ.get("RUN_NIGHTLY_RESULT"):
    with open(os.environ["RUN_NIGHTLY_RESULT"], "w") as f:
        json.dump(runs, f)
print(json.dumps(runs))
