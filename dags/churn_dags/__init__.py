"""What the churn DAGs share: how a platform step becomes a task in each execution profile.

DAG files only orchestrate. A step is a platform *command* (``python -m spark_jobs.ingest --date
{{ ds }}``, ``churn publish --date {{ ds }}``); this module turns it into a task:

* ``local`` profile (the embedded mode, ``CHURN_AIRFLOW_PROFILE=local``, the default): the command
  runs as a local process with the platform environment's Python (``CHURN_PLATFORM_PYTHON``),
  Spark in ``local[*]``, settings from the ``CHURN_*`` environment.
* ``kubernetes`` profile (``CHURN_AIRFLOW_PROFILE=kubernetes``, with the KubernetesExecutor): a
  Spark step (``spark_jobs.*``) runs as a SparkApplication, any other step as a pod of the
  platform image; see ``churn_dags/kubernetes.py``.

Nothing here imports the platform's code (``churn``, ``spark_jobs``, ``ml``): Airflow and the
platform live in separate Python environments.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex

OWNER = "churn-platform"
PROFILE = os.environ.get("CHURN_AIRFLOW_PROFILE", "local")
PROFILES = ("local", "kubernetes")
if PROFILE not in PROFILES:
    raise ValueError(f"CHURN_AIRFLOW_PROFILE={PROFILE!r}: expected one of {', '.join(PROFILES)}")

#: Every task: retries, a timeout and an owner (checked by tests/dags).
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": dt.timedelta(hours=2),
}


def platform_python() -> str:
    """The platform environment's interpreter (local profile)."""
    return os.environ.get("CHURN_PLATFORM_PYTHON") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv", "platform", "bin", "python")


def command(module: str, *args: str) -> str:
    """A platform command line for the local profile: ``<platform python> -m <module> <args>``."""
    return " ".join([shlex.quote(platform_python()), "-m", module, *args])


def published_scores_uri() -> str:
    """The Asset URI of the published scores: postgres://host:port/database/schema/table (no credentials)."""
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("CHURN_PG_URL") or "postgresql://localhost:5432/churn")
    database = (url.path or "/churn").lstrip("/") or "churn"
    return f"postgres://{url.hostname or 'localhost'}:{url.port or 5432}/{database}/churn/customer_scores"


def step(task_id: str, module: str, *args: str, doc: str, timeout: dt.timedelta | None = None, outlets=None):
    """One platform step as a task of the active profile."""
    if PROFILE == "kubernetes":
        from churn_dags import kubernetes

        make = kubernetes.spark_step if module.startswith("spark_jobs.") else kubernetes.pod_step
        return make(task_id, module, kubernetes.split_args(*args), doc=doc,
                    timeout=timeout or DEFAULT_ARGS["execution_timeout"], outlets=outlets or [])
    from airflow.providers.standard.operators.bash import BashOperator

    return BashOperator(
        task_id=task_id,
        bash_command=command(module, *args),
        append_env=True,  # CHURN_* settings reach the command
        doc_md=doc,
        execution_timeout=timeout or DEFAULT_ARGS["execution_timeout"],
        outlets=outlets or [],
    )
