"""DAG integrity: every DAG imports, has no cycles, and every task has retries, a timeout and an
owner; DAG files never import platform code. Parsed by the Airflow environment (.venv/airflow),
as the scheduler would."""

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from churn.core.pipeline import PIPELINES_FILE, load_pipeline
from tests.conftest import ROOT

DAGS = ROOT / "dags"
AIRFLOW_PY = ROOT / ".venv" / "airflow" / "bin" / "python"
NIGHTLY = load_pipeline("nightly")


def dagbag_report(home: Path, **env_extra) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "CHURN_LAKE_URI": "s3a://lake/churn",
           "CHURN_PG_URL": "postgresql://publisher:secret@db.internal:5433/crm", **env_extra}  # pragma: allowlist secret
    proc = subprocess.run([str(AIRFLOW_PY), str(Path(__file__).with_name("dagbag_report.py")), str(DAGS)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return dagbag_report(tmp_path_factory.mktemp("airflow-home"))


def test_every_dag_imports_without_errors(report):
    assert report["errors"] == {}
    assert set(report["dags"]) == {"churn_nightly", "churn_training"}


def test_every_task_has_retries_a_timeout_an_owner_and_docs(report):
    for dag_id, dag in report["dags"].items():
        assert dag["catchup"] is False and dag["max_active_runs"] == 1, dag_id
        for task_id, t in dag["tasks"].items():
            assert t["retries"] >= 1, (dag_id, task_id)
            assert t["timeout"] and t["timeout"] <= 4 * 3600, (dag_id, task_id)
            assert t["owner"] == "churn-platform", (dag_id, task_id)
            assert t["doc"], (dag_id, task_id)


def test_nightly_tasks_are_the_declared_steps_in_order_keyed_on_the_logical_date(report):
    tasks = report["dags"]["churn_nightly"]["tasks"]
    assert NIGHTLY.names == ["db_upgrade", "wait_for_drops", "ingest", "validate", "silver", "features", "labels",
                             "score", "publish", "monitor"]
    # the steps, and the relay of the monitor's retrain request beside the chain
    assert list(tasks) == [*NIGHTLY.names, "monitor_churn_retrain_request"]
    for before, after in zip(NIGHTLY.names, NIGHTLY.names[1:]):
        assert tasks[after]["upstream"] == [before]  # a chain: no cycle, nothing skipped
    for step in NIGHTLY.steps:
        t = tasks[step.name]
        assert f" -m {step.module} " in t["command"] + " ", step.name
        if step.kind == "sensor":  # waits in reschedule mode (no worker slot held) up to the declared timeout
            assert t["operator"] == "BashSensor" and t["mode"] == "reschedule", step.name
            assert t["sensor_timeout"] == step.timeout_minutes * 60 and t["poke_interval"] == 300, step.name
        else:
            assert t["timeout"] == step.timeout_minutes * 60, step.name
        assert t["command"].endswith("--date {{ ds }}") == step.dated, step.name
        assert t["doc"], step.name
    assert tasks["features"]["outlets"] == ["s3a://lake/churn/gold/customer_features"]
    relay = tasks["monitor_churn_retrain_request"]
    assert relay["upstream"] == ["monitor"] and relay["outlets"] == ["churn_retrain_request"]
    assert relay["operator"] == "_PythonDecoratedOperator" and tasks["monitor"]["xcom"] is True
    assert [name for name, t in tasks.items() if t["xcom"] and t["operator"] == "BashOperator"] == ["monitor"]
    assert tasks["publish"]["outlets"] == ["postgres://db.internal:5433/crm/churn/customer_scores"]  # no credentials


def assert_lake_writers_share_one_pool(tasks: dict) -> None:
    """Every task of a step that writes the lake runs in the declared one-slot pool, the others in
    Airflow's default pool (also checked for the kubernetes profile: test_kubernetes_profile.py)."""
    pool = yaml.safe_load(PIPELINES_FILE.read_text())["platform"]["lake_writers_pool"]
    writers = {s.name for s in NIGHTLY.steps if s.writes_lake}
    assert writers == {"ingest", "validate", "silver", "features", "labels", "score"}
    for name, t in tasks.items():
        assert (t["pool"], t["pool_slots"]) == ((pool, 1) if name in writers else ("default_pool", 1)), name


def test_every_lake_writing_task_is_in_the_one_slot_pool(report):
    assert_lake_writers_share_one_pool(report["dags"]["churn_nightly"]["tasks"])


def test_a_step_added_to_the_declaration_becomes_a_task_in_its_place(tmp_path):
    """Adding a step is one declaration: the DAG file is not touched."""
    data = yaml.safe_load(PIPELINES_FILE.read_text())
    steps = data["pipelines"]["nightly"]["steps"]
    steps.insert(next(i for i, s in enumerate(steps) if s["name"] == "score") + 1, {
        "name": "drift", "module": "spark_jobs.drift", "kind": "spark", "timeout_minutes": 45,
        "reads": ["lake:gold/customer_features"], "writes": ["lake:gold/drift"], "doc": "Drift of D against the reference."})
    declaration = tmp_path / "pipelines.yaml"
    declaration.write_text(yaml.safe_dump(data))
    tasks = dagbag_report(tmp_path / "home", CHURN_PIPELINES_FILE=str(declaration))["dags"]["churn_nightly"]["tasks"]
    names = list(tasks)
    assert names[names.index("score"):names.index("publish") + 1] == ["score", "drift", "publish"]
    assert tasks["drift"]["upstream"] == ["score"] and tasks["publish"]["upstream"] == ["drift"]
    assert tasks["drift"]["command"].endswith("-m spark_jobs.drift --date {{ ds }}") and tasks["drift"]["timeout"] == 2700


def test_training_hands_off_to_the_pipeline_then_reports(report):
    training = report["dags"]["churn_training"]
    # weekly, or when the nightly's monitor emits a retrain request
    assert "AssetOrTimeSchedule" in training["schedule"] and "churn_retrain_request" in training["schedule"], training
    tasks = training["tasks"]
    day = "(dag_run.logical_date or dag_run.run_after) | ds"  # an asset-triggered run has no logical date
    assert (f"pipeline run-local --start {{{{ macros.ds_add({day}, -180) }}}} --end {{{{ {day} }}}} --tune"
            in tasks["train_pipeline"]["command"])
    assert tasks["report_decision"]["upstream"] == ["train_pipeline"]


def test_dag_files_never_import_platform_code():
    for path in DAGS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in {"churn", "spark_jobs", "ml"}, f"{path} imports {name}"
