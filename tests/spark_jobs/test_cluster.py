"""The same jobs on a real Spark cluster: a standalone master and two workers (spark_jobs/standalone.py)
on loopback, the jars shipped by ``spark.jars`` as on Kubernetes.

The session's lakehouse was built on its ``local[2]``, its last night included. A copy of it runs that
night again as ``churn run`` against the cluster (driver, two executors and their Python workers, each
its own process): ingest to scoring. Another copy, the reference, only has the night scored in this
process on ``local[2]``. Every lake table must then hold the same rows in both: what the cluster wrote
for the night equals what ``local[2]`` wrote for it (a rerun replaces a night's rows, tested in
tests/spark_jobs/test_lakehouse.py, so the night's second run on the cluster must give them again).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from churn.core.lake import delta_table
from churn.runner import run_pipeline
from spark_jobs.standalone import StandaloneCluster
from tests.conftest import ML_D0, ML_HORIZON, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
NIGHT = ML_D0 + dt.timedelta(days=69)  # the session lake's last night, with the champion's features
STEPS = ["ingest", "validate", "silver", "features", "labels", "score"]
#: When a row was written (wall clock) and which run wrote it: the only columns that may differ.
VOLATILE = {"ingested_at", "scored_at", "quarantined_at", "updated_at", "run_id", "_commit_time"}


@pytest.fixture(scope="module")
def two_runs(spark, lakehouse, champion, make_settings, tmp_path_factory):
    _, trained = champion
    homes = {}
    for name in ("local", "cluster"):
        home = tmp_path_factory.mktemp(f"night-{name}")
        shutil.copytree(lakehouse.home / "lake", home / "lake")
        homes[name] = make_settings(home, raw_uri=str(lakehouse.home / "raw"), label_horizon_days=ML_HORIZON,
                                    mlflow_uri=champion[0].mlflow_tracking_uri)
    copied = {t: delta_table(homes["cluster"], *t).version() for t in tables(homes["cluster"])}
    local = run_pipeline(homes["local"], NIGHT, steps=["score"], spark=spark)  # the rest: the session's build
    with StandaloneCluster(workers=2, cores=1, memory="1g") as cluster:
        s = homes["cluster"]
        env = {**os.environ, **s.as_env(), "CHURN_SPARK_MASTER": cluster.master,
               "CHURN_SPARK_EXECUTOR_MEMORY": "768m", "CHURN_SPARK_DRIVER_MEMORY": "1g"}
        proc = subprocess.run([sys.executable, "-m", "churn", "run", "--date", str(NIGHT), "--steps", ",".join(STEPS)],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        apps = cluster.state()["completedapps"]
    return homes, local, proc, apps, trained, copied


def tables(settings) -> list[tuple[str, str]]:
    lake = settings.lake_uri
    return sorted((layer.name, t.name) for layer in Path(lake).iterdir() if layer.is_dir()
                  for t in layer.iterdir() if (t / "_delta_log").is_dir())


def rows(settings, layer: str, name: str):
    """The table's rows without the volatile columns, in a canonical order (Arrow, no pandas)."""
    import pyarrow as pa

    table = delta_table(settings, layer, name).to_pyarrow_table()
    keep = [f.name for f in table.schema if f.name not in VOLATILE
            and not (pa.types.is_timestamp(f.type) and f.name.endswith("_at"))]
    table = table.select(keep)
    plain = [c for c in keep if not pa.types.is_nested(table.schema.field(c).type)]
    return table.sort_by([(c, "ascending") for c in plain])


def test_the_night_ran_on_the_cluster(two_runs):
    homes, _, proc, apps, *_ = two_runs
    (app,) = apps  # one application: the whole night, on both workers' executors
    assert app["state"] == "FINISHED" and app["cores"] == 2, app
    assert "spark://127.0.0.1" in proc.stderr  # the steps' Spark log line names the master they ran on


def test_the_cluster_rewrote_the_night_rather_than_skipping_it(two_runs):
    """A rerun is not a no-op: each step committed to its tables again (else equal rows prove nothing)."""
    homes, *_, copied = two_runs
    grew = {t for t in tables(homes["cluster"]) if delta_table(homes["cluster"], *t).version() > copied.get(t, -1)}
    assert {("bronze", "usage"), ("silver", "customers"), ("gold", "customer_features"),
            ("gold", "customer_scores")} <= grew, sorted(grew)


def test_every_table_the_night_writes_has_the_same_rows_on_the_cluster_as_on_local(two_runs):
    homes, local, _, _, trained, _ = two_runs
    assert local["score"]["version"] == trained["version"]
    names = tables(homes["local"])
    assert names == tables(homes["cluster"])
    assert ("gold", "customer_scores") in names and ("silver", "customers") in names
    for layer, name in names:
        a, b = rows(homes["local"], layer, name), rows(homes["cluster"], layer, name)
        assert a.num_rows == b.num_rows, f"{layer}/{name}: {a.num_rows} rows on local, {b.num_rows} on the cluster"
        for column in a.column_names:
            x, y = a.column(column), b.column(column)
            assert x.equals(y), f"{layer}/{name}.{column} differs: {x.slice(0, 3)} vs {y.slice(0, 3)}"
