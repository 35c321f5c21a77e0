"""The kubernetes profile: manifests rendered and schema-checked, and the Spark step's failure
handling run against a stand-in Kubernetes API on loopback (tests/dags/k8s_standin.py).

No cluster runs here. The DAGs read their templates from the Helm chart, rendered here with helm
exactly as a cluster gets them (the ConfigMap mounted at CHURN_K8S_TEMPLATES); the pods and
SparkApplications Airflow makes from them are validated against the same schemas as the chart's own
documents (tests/support/k8s.py). The real operators run in the Airflow environment with
`dag.test()`; the stand-in plays the API server and the spark-operator, including the misbehaviour
of apache/airflow#41212 (an application whose driver pod was deleted reports COMPLETED).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from churn.core.pipeline import load_pipeline
from tests.conftest import ROOT
from tests.dags.k8s_standin import StandIn
from tests.dags.test_dag_integrity import assert_lake_writers_share_one_pool
from tests.support import k8s
from tests.support.chart import airflow_templates

DAGS = ROOT / "dags"
HERE = Path(__file__).parent
AIRFLOW = ROOT / ".venv" / "airflow" / "bin"
IMAGE = "registry.example/churn/platform:1.2.3"


@pytest.fixture(scope="module")
def cluster(airflow_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-k8s")
    # the chart's templates as a cluster mounts them; a 3 s start timeout for the never-starting driver
    templates = airflow_templates(home / "k8s", "image.repository=registry.example/churn/platform", "image.tag=1.2.3",
                                  "spark.startTimeoutSeconds=3")
    standin = StandIn().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "CHURN_AIRFLOW_PROFILE": "kubernetes", "CHURN_K8S_TEMPLATES": str(templates), "CHURN_LAKE_URI": "s3a://lake/churn",
        # the cluster's connection (helm/airflow/pod-template.yaml), pointed at the stand-in
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(stand_in_connection(standin.kubeconfig(home / "kubeconfig"))),
    })
    yield standin, env
    standin.stop()


def stand_in_connection(kubeconfig: str) -> dict:
    """The kubernetes_default connection every task pod gets from the pod template, with the
    stand-in's kubeconfig in place of the in-cluster service account."""
    import yaml

    pod = yaml.safe_load((ROOT / "helm" / "airflow" / "pod-template.yaml").read_text())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    conn = json.loads(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    assert conn["extra"].pop("in_cluster") is True
    conn["extra"]["kube_config_path"] = kubeconfig
    return conn


def run_cases(cluster, *cases, extra_env=None):
    standin, env = cluster
    proc = subprocess.run([str(AIRFLOW / "python"), str(HERE / "run_k8s_steps.py"), str(DAGS), standin.url,
                           *[json.dumps(c) for c in cases]], env={**env, **(extra_env or {})},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}, proc.stderr + proc.stdout


def test_the_dags_parse_in_the_kubernetes_profile_and_their_pods_match_the_kubernetes_api(cluster):
    _, env = cluster
    proc = subprocess.run([str(AIRFLOW / "python"), str(HERE / "dagbag_report.py"), str(DAGS)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    tasks = report["dags"]["churn_nightly"]["tasks"]
    spark = {s.name for s in load_pipeline("nightly").steps if s.kind == "spark"}
    assert spark == {"ingest", "validate", "silver", "features", "labels", "score"}
    # the relay of the monitor's retrain request is a small Python task in Airflow's own worker
    relays = {name for name, t in tasks.items() if t["operator"] == "_PythonDecoratedOperator"}
    assert relays == {"monitor_churn_retrain_request"}
    for name, t in tasks.items():
        if name not in relays:
            assert t["operator"] == ("ChurnSparkApplicationOperator" if name in spark else "KubernetesPodOperator"), name
        assert t["retries"] >= 1 and t["timeout"] and t["owner"] == "churn-platform"
    assert_lake_writers_share_one_pool({k: v for k, v in tasks.items() if k not in relays})
    # the monitor's pod writes its result where the XCom sidecar reads it, which the relay reads
    monitor = tasks["monitor"]["pod"]["spec"]["containers"][0]
    assert tasks["monitor"]["xcom"] is True and {"name": "CHURN_RESULT_FILE", "value": "/airflow/xcom/return.json"} \
        in monitor["env"]
    for name, t in tasks.items():  # every pod as the API server would get it: Kubernetes' own schema, strictly
        if t["pod"]:
            assert k8s.validate(t["pod"]) == "kubernetes-validate" and k8s.check_workload_policy(t["pod"]), name
    publish = tasks["publish"]["pod"]
    (base,) = publish["spec"]["containers"]
    assert base["image"] == IMAGE
    assert base["command"] == ["python", "-m", "churn.warehouse.publish"] and base["args"] == ["--date", "{{ ds }}"]
    # the database credentials reach exactly the steps that touch PostgreSQL, never a Spark step
    assert base["envFrom"] == [{"secretRef": {"name": "churn-jobs-settings"}},
                               {"secretRef": {"name": "churn-jobs-database"}}]
    # nothing secret in plain env: no keys or passwords, no URL with a login in it
    assert not any(e["name"].endswith(("KEY", "PASSWORD", "SECRET")) or "@" in (e.get("value") or "")
                   for e in base.get("env") or [])
    database = {s.name for s in load_pipeline("nightly").steps
                if any(x.startswith("postgres:") for x in (*s.reads, *s.writes))}
    assert database == {"db_upgrade", "publish", "monitor"}
    for name, t in tasks.items():
        if name not in spark | relays:
            secrets = [e["secretRef"]["name"] for e in t["pod"]["spec"]["containers"][0]["envFrom"]]
            assert ("churn-jobs-database" in secrets) == (name in database), (name, secrets)
    assert publish["spec"]["securityContext"]["runAsNonRoot"] is True
    training = report["dags"]["churn_training"]["tasks"]["train_pipeline"]["pod"]["spec"]["containers"][0]
    assert training["args"][:2] == ["pipeline", "submit"]  # the cluster hands off to Kubeflow Pipelines


@pytest.fixture(scope="module")
def spark_steps(cluster):
    """Every scenario of a Spark step, run in one Airflow process (one interpreter start, one parse).
    The provider checks a submitted application that is not running yet every 10 s (a fixed sleep in
    its CustomObjectLauncher): "ok" goes through that wait once, the failure scenarios start their
    driver at once."""
    return run_cases(
        cluster,
        {"name": "ok", "standin": {"start_after": 1, "run_for": 2}},
        # the driver pod is deleted mid-run; the application still says COMPLETED (apache/airflow#41212)
        {"name": "driver_deleted", "standin": {"start_after": 0, "run_for": 30, "delete_driver_after": 2}},
        # the spark-operator never starts the driver: the start times out
        {"name": "never_starts", "standin": {"start_after": None}},
        # the driver fails
        {"name": "driver_fails", "standin": {"start_after": 0, "run_for": 1, "exit_code": 1}},
        # the task is killed (here by its execution timeout; clearing it sends SIGTERM, same on_kill)
        {"name": "killed", "standin": {"start_after": 0, "run_for": 120}, "timeout": 5},
    )


def test_a_spark_step_succeeds_only_when_its_driver_exits_0_and_leaves_no_pod(spark_steps):
    results, log = spark_steps
    r = results["ok"]
    assert r["task"] == "success", log[-3000:]
    assert r["left"]["pods"] == []  # the driver pod is deleted once its logs are in Airflow
    (app,) = r["left"]["submitted"]
    # what reached the API server, after Airflow rendered the chart's template: the upstream CRD schema.
    # One known deviation, the provider's own: for reattach_on_restart it adds the task's labels under
    # spec.labels too, which v1beta2 does not define (the API server prunes it from the structural
    # schema; the driver and executor labels it also sets are the ones that matter).
    checked = json.loads(json.dumps(app))
    assert {"dag_id", "task_id", "run_id"} <= set(checked["spec"].pop("labels"))
    assert k8s.validate(checked) == "sparkoperator.k8s.io/sparkapplication_v1beta2.json"
    spec = app["spec"]
    assert spec["arguments"] == ["--date", "2026-03-02"] and spec["mainApplicationFile"].endswith("/spark_jobs/ingest.py")
    assert spec["image"] == IMAGE and spec["restartPolicy"]["type"] == "Never"
    assert {"name": "CHURN_JARS_DIR", "value": "/opt/churn/jars"} in spec["driver"]["env"]
    assert spec["driver"]["envFrom"] == [{"secretRef": {"name": "churn-jobs-settings"}}]
    assert spec["executor"]["envFrom"] == [{"secretRef": {"name": "churn-jobs-settings"}}]  # no database credentials
    for role in ("driver", "executor"):  # the chart's security context and the PrometheusServlet reach the pods
        assert spec[role]["securityContext"]["runAsNonRoot"] is True and spec[role]["labels"]["churn-platform/access"] == "jobs"
    assert spec["sparkConf"]["spark.ui.prometheus.enabled"] == "true"


def test_known_spark_on_kubernetes_failures_fail_the_task_and_leave_nothing_behind(spark_steps):
    results, log = spark_steps
    assert set(results) == {"ok", "driver_deleted", "never_starts", "driver_fails", "killed"}
    for name, r in results.items():
        if name == "ok":
            continue
        assert r["task"] == "failed", (name, log[-4000:])
        assert r["left"]["apps"] == [] and r["left"]["pods"] == [], (name, r["left"])
    assert log.count("deleting SparkApplication") >= 4  # the operator's own clean-up, not a TTL