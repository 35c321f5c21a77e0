"""The ``kubernetes`` profile: platform steps as pods and SparkApplications.

* A Spark step (``kind: spark`` in churn/core/pipelines.yaml) becomes a SparkApplication (kubeflow spark-operator) rendered from
  ``templates/spark-application.yaml``, run by :class:`ChurnSparkApplicationOperator`.
* Any other step (``churn db upgrade``, ``churn publish``, the training hand-off) runs as a pod of
  the platform image via KubernetesPodOperator, on ``templates/step-pod.yaml``.

Settings reach the containers only through Secrets; nothing secret is rendered into a manifest.
``CHURN_K8S_SECRET`` holds the CHURN_* variables every step reads (lake, S3 and MLflow settings);
``CHURN_K8S_DATABASE_SECRET`` holds ``CHURN_PG_URL`` (the publishing role) and is mounted only into
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

TEMPLATES = Path(__file__).with_name("templates")
SPARK_TEMPLATE = TEMPLATES / "spark-application.yaml"
POD_TEMPLATE = TEMPLATES / "step-pod.yaml"


def config() -> dict:
    """The profile's deployment facts, from the environment of the Airflow deployment."""
    from churn_dags import platform_image

    env = os.environ.get
    return {
        "namespace": env("CHURN_K8S_NAMESPACE", "churn"),
        "image": platform_image(),
        "secret": env("CHURN_K8S_SECRET", "churn-platform-env"),
        # CHURN_PG_URL (the publishing role) lives apart: only the pods of steps that touch
        # PostgreSQL mount it, never a Spark driver or executor
        "database_secret": env("CHURN_K8S_DATABASE_SECRET", "churn-platform-database"),
        "service_account": env("CHURN_K8S_SERVICE_ACCOUNT", "churn-spark"),
        "start_timeout": int(env("CHURN_K8S_START_TIMEOUT", "600")),
        "driver_cores": int(env("CHURN_SPARK_DRIVER_CORES", "1")),
        "driver_memory": env("CHURN_SPARK_DRIVER_MEMORY_K8S", "4g"),
        "executors": int(env("CHURN_SPARK_EXECUTORS", "2")),
        "executor_cores": int(env("CHURN_SPARK_EXECUTOR_CORES", "2")),
        "executor_memory": env("CHURN_SPARK_EXECUTOR_MEMORY", "4g"),
        "shuffle_partitions": int(env("CHURN_SPARK_SHUFFLE_PARTITIONS", "64")),
    }


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
        application_file=str(SPARK_TEMPLATE.relative_to(TEMPLATES.parent.parent)),
        params={**cfg, "name": f"churn-{task_id.replace('_', '-')}", "step": task_id, "script": script},
        startup_timeout_seconds=cfg["start_timeout"],
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
        pod_template_file=str(POD_TEMPLATE),
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name))
                  for name in (cfg["secret"], *([cfg["database_secret"]] if database else []))],
        labels={"app.kubernetes.io/part-of": "churn-platform", "app.kubernetes.io/component": task_id},
        service_account_name=cfg["service_account"],
        on_finish_action="delete_pod",
        reattach_on_restart=True,
        startup_timeout_seconds=cfg["start_timeout"],
        get_logs=True,
        do_xcom_push=result,
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
