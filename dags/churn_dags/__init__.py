"""What the churn DAGs share: the pipeline declaration, and how a step becomes a task in each
execution profile.

DAG files only orchestrate. The steps, their order, commands and timeouts are declared once in
``churn/core/pipelines.yaml`` (``CHURN_PIPELINES_FILE`` names another copy, e.g. in an Airflow image),
which the platform reads too; this module reads it with Airflow's own YAML parser. A step is a
platform *command* (``python -m spark_jobs.ingest --date {{ ds }}``); this module turns it into a task:

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

def pipelines_file() -> str:
    """The declaration: ``CHURN_PIPELINES_FILE``, else the repository's ``churn/core/pipelines.yaml``."""
    return os.environ.get("CHURN_PIPELINES_FILE") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "churn", "core", "pipelines.yaml")


def declaration() -> dict:
    import yaml

    with open(pipelines_file()) as f:
        return yaml.safe_load(f)


def declared_steps(pipeline: str) -> list[dict]:
    """The steps of a declared pipeline, in order (``name``, ``module``, ``kind``, ``doc``, ...)."""
    return declaration()["pipelines"][pipeline]["steps"]


def lake_uri() -> str:
    """``CHURN_LAKE_URI``, else the lake under ``CHURN_HOME`` as the platform's settings would place it."""
    platform = declaration()["platform"]
    home = os.path.abspath(os.path.expanduser(os.environ.get("CHURN_HOME") or platform["home"]))
    return (os.environ.get("CHURN_LAKE_URI") or platform["lake"].format(home=home)).rstrip("/")


def lake_writers_pool() -> str:
    """The one-slot pool of every task that writes the lake (``platform.lake_writers_pool``)."""
    return declaration()["platform"]["lake_writers_pool"]


#: How often a sensor step (``kind: sensor``) checks again.
SENSOR_POKE = dt.timedelta(minutes=5)

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


def postgres_table_uri(table: str) -> str:
    """The Asset URI of a published table: postgres://host:port/database/schema/table (no credentials)."""
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("CHURN_PG_URL") or "postgresql://localhost:5432/churn")
    database = (url.path or "/churn").lstrip("/") or "churn"
    return f"postgres://{url.hostname or 'localhost'}:{url.port or 5432}/{database}/{table.replace('.', '/')}"


def asset(outlet: dict):
    """An Airflow Asset for a declared outlet: ``{name, lake: <layer>/<table>}`` or ``{name, postgres: <schema.table>}``."""
    from airflow.sdk import Asset

    if "lake" in outlet:
        return Asset(name=outlet["name"], uri=f"{lake_uri()}/{outlet['lake']}")
    return Asset(name=outlet["name"], uri=postgres_table_uri(outlet["postgres"]))


def pipeline_tasks(pipeline: str) -> list:
    """One task per declared step of ``pipeline``, in declared order, keyed on the run's logical date.
    A step that declares ``signals`` also gets, downstream of it and outside the chain, one relay
    task per signal (:func:`signal_relay`)."""
    tasks = []
    for s in declared_steps(pipeline):
        args = [*s.get("args", []), *(["--date {{ ds }}"] if s.get("dated", True) else [])]
        writes_lake = any(w.startswith("lake:") for w in s.get("writes", []))
        database = any(r.startswith("postgres:") for r in (*s.get("reads", []), *s.get("writes", [])))
        task = step(s["name"], s["module"], *args, doc=s["doc"], spark=s["kind"] == "spark", sensor=s["kind"] == "sensor",
                    timeout=dt.timedelta(minutes=s.get("timeout_minutes", 120)),
                    outlets=[asset(o) for o in s.get("outlets", [])],
                    pool=lake_writers_pool() if writes_lake else None, database=database,
                    result=bool(s.get("signals")))
        for sig in s.get("signals", []):
            signal_relay(task, sig)
        tasks.append(task)
    return tasks


#: What of a step's result an Asset event carries (the per-feature detail stays in the step's report).
SIGNAL_EXTRA = ("night", "model_name", "model_version", "retrain", "drifted_importance", "drifted_share",
                "drifted_features", "score_drifted", "realized", "report", "mlflow_run")


def signal_relay(step_task, signal: dict):
    """A task that turns the step's result into an event of the Asset ``signal["name"]`` when the
    result's ``signal["when"]`` (a dotted key) is true, carrying the result in the event's extra;
    otherwise it is skipped and no event is emitted. The step decides (churn.core.pipeline), the
    DAG only relays: a DAG scheduled on the Asset (churn_training) then gets a run."""
    from airflow.sdk import Asset, task
    from airflow.sdk.exceptions import AirflowSkipException

    target = Asset(name=signal["name"])

    @task(task_id=f"{step_task.task_id}_{signal['name']}", outlets=[target], execution_timeout=dt.timedelta(minutes=5),
          doc_md=f"Emit an event of the Asset {signal['name']} when the result of {step_task.task_id} says "
                 f"`{signal['when']}` (skipped otherwise).")
    def relay(result, **context):
        import json

        if isinstance(result, str):  # a local process: the last line of its stdout
            try:
                result = json.loads(result)
            except ValueError:
                raise ValueError(f"{step_task.task_id} printed no JSON result as its last line: {result[:200]!r}") from None
        value = result
        for key in signal["when"].split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not value:
            raise AirflowSkipException(f"{signal['when']} is not true in the result of {step_task.task_id}: "
                                       f"no {signal['name']} event")
        extra = {k: result[k] for k in SIGNAL_EXTRA if k in result}
        context["outlet_events"][target].extra = extra
        return extra

    return relay(step_task.output)


def step(task_id: str, module: str, *args: str, doc: str, timeout: dt.timedelta | None = None, outlets=None,
         spark: bool = False, pool: str | None = None, sensor: bool = False, database: bool = False,
         result: bool = False):
    """One platform command as a task of the active profile (``spark``: it runs Spark; ``pool``: the
    lake writers' one-slot pool for a step that writes the lake, so no two of them ever overlap,
    whichever runs, scheduled nights or backfills, they belong to; ``database``: the step reads or
    writes PostgreSQL, so in a cluster its pod gets the database credentials; no other pod, and no
    Spark driver or executor, ever does; ``result``: the step's JSON result becomes the task's XCom)."""
    extra = {"pool": pool} if pool else {}
    if PROFILE == "kubernetes":
        from churn_dags import kubernetes

        if spark:
            if database:
                raise ValueError(f"step {task_id}: a Spark step never gets the database credentials; publish "
                                 "from a process step (churn/core/pipelines.yaml)")
            make = kubernetes.spark_step
        else:
            make = kubernetes.pod_step
            extra["database"] = database
            extra["result"] = result
        if sensor:  # a pod that polls until the date's drops are in or its deadline passes
            args = ("--poll", str(int(SENSOR_POKE.total_seconds())), *args)
        return make(task_id, module, kubernetes.split_args(*args), doc=doc,
                    timeout=timeout or DEFAULT_ARGS["execution_timeout"], outlets=outlets or [], **extra)
    if sensor:
        from airflow.providers.standard.sensors.bash import BashSensor

        # reschedule mode: no worker slot is held between pokes; exit 75 means "not yet", any other
        # non-zero exit fails the task at once (past the deadline, the command names the missing drops)
        return BashSensor(task_id=task_id, bash_command=command(module, *args), env=None, doc_md=doc,
                          mode="reschedule", poke_interval=SENSOR_POKE, timeout=timeout or DEFAULT_ARGS["execution_timeout"],
                          retry_exit_code=75, outlets=outlets or [], **extra)
    from airflow.providers.standard.operators.bash import BashOperator

    return BashOperator(
        task_id=task_id,
        bash_command=command(module, *args),
        append_env=True,  # CHURN_* settings reach the command
        do_xcom_push=result,  # the last line of stdout: the step's JSON result
        doc_md=doc,
        execution_timeout=timeout or DEFAULT_ARGS["execution_timeout"],
        outlets=outlets or [],
        **extra,
    )
