"""Airflow on the KubernetesExecutor: the values for the official Apache Airflow chart agree with the
platform's chart and DAGs, and the worker pod of every task, rendered by the cncf-kubernetes
provider's own `airflow kubernetes generate-dag-yaml` from helm/airflow/pod-template.yaml, is valid
Kubernetes and follows the workload policy."""

import os
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from tests.support import k8s
from tests.support.chart import CHART, airflow_templates, render

AIRFLOW_VALUES = ROOT / "helm" / "airflow"
AIRFLOW = ROOT / ".venv" / "airflow" / "bin" / "airflow"


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.fixture(scope="module")
def worker_pods(airflow_home, tmp_path_factory):
    """generate-dag-yaml for both DAGs, with the executor's pod template and the chart's templates."""
    out = tmp_path_factory.mktemp("worker-pods")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
                "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(AIRFLOW_VALUES / "pod-template.yaml"),
                "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": "churn", "CHURN_AIRFLOW_PROFILE": "kubernetes",
                "CHURN_K8S_TEMPLATES": str(airflow_templates(out / "k8s"))})
    pods = {}
    for dag in ("churn_nightly", "churn_training"):
        proc = subprocess.run([str(AIRFLOW), "kubernetes", "generate-dag-yaml", "-o", str(out / dag), dag,
                               "-l", "2026-03-02T00:00:00+00:00"], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for f in (out / dag).rglob("*.yml"):
            pod = yaml.safe_load(f.read_text())
            pods[(dag, pod["metadata"]["labels"]["task_id"])] = pod
    return pods


def test_every_task_gets_a_valid_worker_pod_that_follows_the_policy(worker_pods):
    from churn.core.pipeline import load_pipeline

    nightly = {t for d, t in worker_pods if d == "churn_nightly"}
    assert {s.name for s in load_pipeline("nightly").steps} < nightly  # plus the signal relay
    assert ("churn_training", "train_pipeline") in worker_pods
    for (dag, task), pod in worker_pods.items():
        assert k8s.validate(pod) == "kubernetes-validate", task
        assert k8s.check_workload_policy(pod), task
        spec = pod["spec"]
        assert pod["metadata"]["namespace"] == "churn" and spec["serviceAccountName"] == "airflow-worker"
        (base,) = spec["containers"]
        assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"], task
        assert env_of(base)["CHURN_AIRFLOW_PROFILE"] == "kubernetes"
        assert {"name": "churn-k8s", "configMap": {"name": "churn-airflow-k8s"}} in spec["volumes"]


def test_the_airflow_values_agree_with_the_platform_chart_and_the_dags():
    values = yaml.safe_load((AIRFLOW_VALUES / "values.yaml").read_text())
    template = yaml.safe_load((AIRFLOW_VALUES / "pod-template.yaml").read_text())
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert env_of(values) == {"CHURN_AIRFLOW_PROFILE": "kubernetes", "CHURN_K8S_TEMPLATES": "/opt/airflow/churn/k8s"}
    # the same mount of the chart's ConfigMap in every component and in every task pod
    (volume,) = values["volumes"]
    assert volume["configMap"]["name"] == chart["airflow"]["templatesConfigMap"]
    assert volume in template["spec"]["volumes"]
    (mount,) = values["volumeMounts"]
    assert mount in template["spec"]["containers"][0]["volumeMounts"] and mount["mountPath"] == "/opt/airflow/churn/k8s"
    base_env = env_of(template["spec"]["containers"][0])
    assert {k: base_env[k] for k in env_of(values)} == env_of(values)
    # images: the Airflow image of docker/airflow.Dockerfile, as the chart's pool job uses it
    assert values["images"]["airflow"] == {**chart["airflow"]["image"], "pullPolicy": "IfNotPresent"}
    assert template["spec"]["containers"][0]["image"] == "{repository}:{tag}".format(**chart["airflow"]["image"])
    # the workers' ServiceAccount is the one the chart's Role is bound to
    assert values["workers"]["serviceAccount"]["name"] == chart["airflow"]["workerServiceAccountName"] \
        == template["spec"]["serviceAccountName"]
    binding = [d for d in render() if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "churn-airflow-worker"][0]
    assert binding["subjects"][0]["name"] == "airflow-worker"
    # metrics, authentication, nothing exposed, secrets by name only
    assert values["statsd"]["enabled"] is True and values["config"]["metrics"]["statsd_on"] == "True"
    assert values["config"]["core"]["auth_manager"].endswith("FabAuthManager")
    assert values["webserver"]["defaultUser"]["enabled"] is False
    assert values["apiServer"]["service"]["type"] == "ClusterIP" and not values["ingress"]["apiServer"]["enabled"]
    assert values["data"]["metadataSecretName"] == f"{chart['airflow']['release']}-metadata"
    assert "password" not in (AIRFLOW_VALUES / "values.yaml").read_text().lower().replace("password in values", "")
