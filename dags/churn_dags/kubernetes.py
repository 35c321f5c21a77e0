"""The ``kubernetes`` profile: platform steps as pods and SparkApplications.

* A Spark step (``kind: spark`` in churn/core/pipelines.yaml) becomes a SparkApplication (kubeflow
  spark-operator) rendered from ``spark-application.yaml``, run by :class:`ChurnSparkApplicationOperator`.
* Any other step (``churn db upgrade``, ``churn publish``, the training hand-off) runs as a pod of
  the platform image via KubernetesPodOperator, on ``step-pod.yaml``.

Both templates, and the deployment's facts (``profile.yaml``: namespace, image, Secrets, service
account), come from the Helm chart (helm/churn-platform/templates/spark.yaml), which renders them into
a ConfigMap mounted at ``CHURN_K8S_TEMPLATES``: the chart and the DAGs never disagree on an image,
a Secret or a resource. Settings reach the containers only through Secrets; nothing secret is
rendered into a manifest. The jobs' Secret holds the CHURN_* variables every step reads (lake, S3
and MLflow settings); the database Secret holds ``CHURN_PG_URL`` (the publishing role) and is mounted only into
the pods of steps that read or write PostgreSQL (``postgres:`` in their declared reads or writes:
``db_upgrade``, ``publish``). Spark drivers and executors never receive the database credentials.

Known failure modes of Spark on Kubernetes under Airflow are handled here rather than inherited
(each is tested against a stand-in Kubernetes API, tests/dags/test_kubernetes_profile.py):

* a driver pod deleted mid-run fails the task, although the SparkApplication then reports
  COMPLETED (apache/airflow#41212): the pinned provider follows the driver pod, not the
  application's state, and the stand-in test keeps it that way across upgrades;
* a SparkApplication whose start times out, or that fails in any way, is deleted (the provider's
  own start-timeout path reads the driver pod first and, when there is none, raises before it
  deletes the application);
* a task that is killed (cleared, marked failed, timed out) deletes its SparkApplication, and with
  it (owner references) the driver and executor pods, even when it is killed before the launcher
  existed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: The deployment's templates and facts, from the churn-platform Helm chart's ConfigMap
#: (``airflow.templatesConfigMap``), mounted into every Airflow pod at this path
#: (helm/airflow/values.yaml): ``profile.yaml``, ``spark-application.yaml``, ``step-pod.yaml``.
TEMPLATES_ENV = "CHURN_K8S_TEMPLATES"
TEMPLATES_DEFAULT = "/opt/airflow/churn/k8s"


def templates() -> Path:
    folder = Path(os.environ.get(TEMPLATES_ENV) or TEMPLATES_DEFAULT)
    missing = [f for f in ("profile.yaml", "spark-application.yaml", "step-pod.yaml") if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{TEMPLATES_ENV}={folder}: {', '.join(missing)} missing. The kubernetes profile reads the churn-platform "
            "chart's ConfigMap (airflow.templatesConfigMap) mounted there; see helm/airflow/values.yaml")
    return folder


def config() -> dict:
    """The profile's deployment facts, as the chart rendered them (``profile.yaml``)."""
    import yaml

    folder = templates()
    cfg = yaml.safe_load((folder / "profile.yaml").read_text())
    expected = {"namespace", "image", "database_secret", "service_account", "start_timeout_seconds"}
    if set(cfg) != expected:
        raise ValueError(f"{folder / 'profile.yaml'}: expected the keys {sorted(expected)}, got {sorted(cfg)}")
    return {**cfg, "spark_template": folder / "spark-application.yaml", "pod_template": folder / "step-pod.yaml"}


def _operator_class():
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from kubernetes.client.exceptions import ApiException

    class ChurnSparkApplicationOperator(SparkKubernetesOperator):
        """SparkKubernetesOperator that never leaves a SparkApplication behind when the task fails or is
        killed."""

        def execute(self, context):
            try:
                return super().execute(context)
            except BaseException:
                self._delete_application("the task failed")
                raise

        def _delete_application(self, why: str) -> None:
            name = getattr(self, "name", None)
            if not name:
                return
            self.log.warning("deleting SparkApplication %s (%s)", name, why)
            try:
                self.custom_obj_api.delete_namespaced_custom_object(
                    group="sparkoperator.k8s.io", version="v1beta2", namespace=self.namespace,
                    plural="sparkapplications", name=name)
            except ApiException as exc:
                if exc.status != 404:
                    self.log.error("could not delete SparkApplication %s: %s", name, exc)

        def on_kill(self) -> None:
            self._killed = True
            self._delete_application("the task was killed")

    return ChurnSparkApplicationOperator


def spark_step(task_id: str, module: str, args: list[str], *, doc: str, timeout, outlets, **task_args):
    """A Spark step (``kind: spark`` in the declaration) as a SparkApplication."""
    if args != ["--date", "{{ ds }}"]:
        raise ValueError(f"{task_id}: a Spark step of the kubernetes profile takes exactly --date {{{{ ds }}}} "
                         f"(templates/spark-application.yaml), got {args}")
    cfg = config()
    script = module.replace(".", "/")  # the module's file in the image, under /opt/churn
    return _operator_class()(
        task_id=task_id,
        namespace=cfg["namespace"],
        # the template's text: Airflow renders it per run ({{ params.* }}, {{ ds }})
        application_file=cfg["spark_template"].read_text(),
        params={"name": f"churn-{task_id.replace('_', '-')}", "step": task_id, "script": script},
        startup_timeout_seconds=cfg["start_timeout_seconds"],
        get_logs=True,
        reattach_on_restart=True,
        delete_on_termination=True,
        doc_md=doc,
        execution_timeout=timeout,
        outlets=outlets,
        **task_args,
    )


#: Where a pod's step writes its JSON result for the KubernetesPodOperator's XCom sidecar.
RESULT_FILE = "/airflow/xcom/return.json"


def pod_step(task_id: str, module: str, args: list[str], *, doc: str, timeout, outlets, database: bool = False,
             result: bool = False, **task_args):
    """Any other step as a pod of the platform image (with the database Secret too if ``database``;
    with ``result``, the step writes its JSON result where the XCom sidecar reads it)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    cfg = config()
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"churn-{task_id.replace('_', '-')}",
        namespace=cfg["namespace"],
        image=cfg["image"],
        cmds=["python", "-m", module],
        arguments=args,
        pod_template_file=str(cfg["pod_template"]),
        # the template mounts the jobs' settings Secret; only a step that touches PostgreSQL adds the database's
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=cfg["database_secret"]))] if database else None,
        labels={"app.kubernetes.io/part-of": "churn-platform", "app.kubernetes.io/component": task_id},
        service_account_name=cfg["service_account"],
        on_finish_action="delete_pod",
        reattach_on_restart=True,
        startup_timeout_seconds=cfg["start_timeout_seconds"],
        get_logs=True,
        do_xcom_push=result,
        # the XCom sidecar runs as unprivileged as the step (its resources: the connection's
        # xcom_sidecar_container_resources, helm/airflow/pod-template.yaml)
        xcom_sidecar_container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])) if result else None,
        env_vars=[k8s.V1EnvVar(name="CHURN_RESULT_FILE", value=RESULT_FILE)] if result else None,
        doc_md=doc,
        execution_timeout=timeout,
        outlets=outlets,
        **task_args,
    )


def split_args(*args: str) -> list[str]:
    """``--start {{ macros.ds_add(ds, -180) }}`` -> ['--start', '{{ macros.ds_add(ds, -180) }}']:
    words, with a Jinja expression (spaces and all) kept as one argument."""
    out: list[str] = []
    for a in args:
        out += re.findall(r"\S*\{\{.*?\}\}\S*|\S+", a)
    return out
