"""churn_nightly end to end, the nightly pipeline through both of its runners on one lake:

1. START through `churn nightly`'s in-process runner (the history and the first published night);
2. D1 through Airflow: `dag.test()` in the local profile, every task its platform command as a
   process (Spark steps attached to one warm JVM);
3. D1 again through the in-process runner: a rerun of a night the DAG ran.

PostgreSQL must end with exactly one row per active customer per date, equal to the Delta scores,
`scoring_runs` must record all three runs, and the task logs must carry no progress bars. One night
through Airflow proves the DAG's wiring; the rerun and the second date prove idempotency and
partitioning, whichever runner ran the night (both read churn/core/pipelines.yaml).
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time

import numpy as np
import psycopg
import pytest

from churn.core.lake import delta_table
from tests.conftest import ROOT, generate_base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
AIRFLOW = ROOT / ".venv" / "airflow" / "bin"
START = dt.date(2026, 3, 1)
D1 = START + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def nightly(spark, champion, make_settings, postgres, airflow_home, tmp_path_factory):
    from churn.runner import run_pipeline

    home = tmp_path_factory.mktemp("nightly-e2e")
    generate_base(home, 300, START, 2, seed=11)
    db = f"e2e_{os.getpid()}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    pg_url = postgres.url.rsplit("/", 1)[0] + f"/{db}"
    settings = make_settings(home, mlflow_uri=champion[0].mlflow_tracking_uri, label_horizon_days=7, pg_url=pg_url)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW", "PYSPARK"))}
    env.update(settings.as_env())
    gateway = home / "spark-gateway.json"
    env.update({
        "CHURN_PG_URL": pg_url, "CHURN_SPARK_GATEWAY": str(gateway), "CHURN_PLATFORM_PYTHON": sys.executable,
        "CHURN_AIRFLOW_PROFILE": "local", "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    # the Airflow tasks' warm JVM starts while this process runs the first night
    jvm = subprocess.Popen([sys.executable, "-m", "churn", "spark-gateway"], env=env,
                           stdout=open(home / "spark-gateway.log", "w"), stderr=subprocess.STDOUT)
    try:
        run_pipeline(settings, START, spark=spark)  # 1. `churn nightly --date START`, in this process
        deadline = time.time() + 120
        while not gateway.exists():
            assert jvm.poll() is None and time.time() < deadline, (home / "spark-gateway.log").read_text()[-2000:]
            time.sleep(1)
        log, result = home / "run_nightly.log", home / "run_nightly.json"
        with open(log, "w") as out:
            proc = subprocess.run([str(AIRFLOW / "python"), str(ROOT / "tests" / "dags" / "run_nightly.py"),
                                   str(ROOT / "dags"), str(D1)], env={**env, "RUN_NIGHTLY_RESULT": str(result)},
                                  stdout=out, stderr=subprocess.STDOUT, timeout=1200)
    finally:
        jvm.terminate()
        jvm.wait(30)
    text = log.read_text()
    problems = "\n".join(line[:400] for line in text.splitlines() if "error" in line.lower() or "Traceback" in line)
    assert proc.returncode == 0, f"{problems[-6000:]}\n(full log: {log})"
    runs = json.loads(result.read_text())
    run_pipeline(settings, D1, spark=spark)  # 3. the night the DAG ran, rerun by the in-process runner
    yield settings, pg_url, runs, problems, text
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_every_declared_step_of_the_airflow_run_succeeds_quietly(nightly):
    from churn.core.pipeline import load_pipeline

    _, _, runs, problems, text = nightly
    assert [r["date"] for r in runs] == [str(D1)]
    (run,) = runs
    assert run["state"] == "success", (run, problems[-6000:])
    # every declared step ran, and succeeded (their order is the DAG's: tests/dags/test_dag_integrity.py)
    assert sorted(run["tasks"]) == sorted(load_pipeline("nightly").names), run
    assert set(run["tasks"].values()) == {"success"}, run
    # a task log is not a terminal: no progress bars (GX draws hundreds of lines a night on one)
    assert "Calculating Metrics" not in text and "it/s]" not in text


def test_postgres_holds_one_row_per_active_customer_per_date_equal_to_delta(nightly):
    settings, pg_url, *_ = nightly
    with psycopg.connect(pg_url) as conn:
        for d in (START, D1):
            delta = delta_table(settings, "gold", "customer_scores").to_pandas(filters=[("score_date", "=", d)])
            features = delta_table(settings, "gold", "customer_features").to_pandas(filters=[("snapshot_date", "=", d)])
            assert len(delta) == len(features) > 250  # every active customer of the day
            rows = conn.execute("SELECT customer_id, churn_probability, risk_decile, reason_1_feature, reason_1_contribution "
                                "FROM churn.customer_scores WHERE score_date = %s", (d,)).fetchall()
            assert len(rows) == len({r[0] for r in rows}) == len(delta)
            got = {r[0]: r[1:] for r in rows}
            want = delta.set_index("customer_id")
            assert set(got) == set(want.index)
            assert np.allclose([got[c][0] for c in want.index], want["churn_probability"].to_numpy())
            assert [got[c][1] for c in want.index] == want["risk_decile"].tolist()
            first = [(r[0]["feature"], r[0]["contribution"]) if len(r) else (None, None) for r in want["reasons"]]
            assert [got[c][2:] for c in want.index] == first
        (dates,) = conn.execute("SELECT array_agg(DISTINCT score_date ORDER BY score_date) FROM churn.customer_scores").fetchone()
        assert dates == [START, D1]
        # the latest view: the newest published day, one row per customer
        latest = conn.execute("SELECT count(*), count(DISTINCT customer_id), min(score_date), max(score_date) "
                              "FROM churn.customer_scores_latest").fetchone()
        assert latest == (len(delta), len(delta), D1, D1)


def test_scoring_runs_records_all_three_runs(nightly):
    _, pg_url, *_ = nightly
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT score_date, status, rows_expected, rows_published FROM churn.scoring_runs "
                            "ORDER BY started_at").fetchall()
        published = dict(conn.execute("SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1").fetchall())
    assert [(r[0], r[1]) for r in runs] == [(START, "succeeded"), (D1, "succeeded"), (D1, "succeeded")]
    for d, _, expected, n in runs:
        assert expected == n == published[d]
