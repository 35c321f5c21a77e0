"""Run with the Airflow environment's Python: parse the DAG folder and print what the tests check, as JSON."""

import json, sys
from airflow.models.dagbag import DagBag


def pod(task):
    """The pod a KubernetesPodOperator would create (kubernetes profile), as the API would get it."""
    if type(task).__name__ != "KubernetesPodOperator":
        return None
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.serialize_pod(task.build_pod_request_obj())


bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": f"{type(dag.timetable).__name__} {dag.timetable.summary}"
                    + "".join(f" {a.name}" for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects", []) or []), "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "tasks": {t.task_id: {"retries": t.retries, "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                              "owner": t.owner, "upstream": sorted(t.upstream_task_ids), "doc": bool(t.doc_md),
                              "command": getattr(t, "bash_command", None), "operator": type(t).__name__, "pod": pod(t),
                              "outlets": [getattr(o, "uri", str(o)) for o in t.outlets],
                              "pool": t.pool, "pool_slots": t.pool_slots, "xcom": t.do_xcom_push,
                              "mode": getattr(t, "mode", None), "sensor_timeout": getattr(t, "timeout", None) if hasattr(t, "poke") else None,
                              "poke_interval": getattr(t, "poke_interval", None) if hasattr(t, "poke") else None} for t in dag.tasks},
    }
print(json.dumps(out))
