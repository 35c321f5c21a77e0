"""Run with the Airflow environment's Python, against the stand-in Kubernetes API (tests/dags).

For each scenario given as JSON (argv[3:]): tell the stand-in how its spark-operator behaves,
run one Spark step of the kubernetes profile (the real operator built by churn_dags.kubernetes)
with `dag.test()`, and report the task's state and what is left in the "cluster". One JSON line.
"""

import datetime as dt
import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

dags, standin, cases = sys.argv[1], sys.argv[2], [json.loads(c) for c in sys.argv[3:]]
# dag.test() runs DAGs of the configured DAG folder: make it a folder holding only the check DAGs
folder = Path(tempfile.mkdtemp(prefix="k8s-dags-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
from airflow.models.dagbag import DagBag  # noqa: E402

DAG_FILE = '''
import datetime as dt, json, os, sys
sys.path.insert(0, {dags!r})
from airflow.sdk import DAG
from churn_dags import kubernetes

for i, case in enumerate(json.loads(os.environ["K8S_CASES"])):
    with DAG(f"k8s_step_{{i}}", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
             catchup=False, template_searchpath=[{dags!r}]) as dag:
        op = kubernetes.spark_step("ingest", "spark_jobs.ingest", kubernetes.split_args("--date {{{{ ds }}}}"),
                                   doc="check", timeout=dt.timedelta(seconds=case.get("timeout", 300)), outlets=[])
        op.retries = 0
    globals()[f"dag_{{i}}"] = dag
'''


def control(body=None):
    req = urllib.request.Request(f"{standin}/_standin", data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


os.environ["K8S_CASES"] = json.dumps(cases)
(folder / "k8s_step_check.py").write_text(DAG_FILE.format(dags=dags))
bag = DagBag(dag_folder=str(folder))
assert not bag.import_errors, bag.import_errors
out = []
for i, case in enumerate(cases):
    control(case["standin"])
    run = bag.get_dag(f"k8s_step_{i}").test(logical_date=dt.datetime(2026, 3, 2, 2, tzinfo=dt.timezone.utc))
    (ti,) = run.get_task_instances()
    out.append({"name": case["name"], "task": str(ti.state), "left": control()})
print(json.dumps(out))
