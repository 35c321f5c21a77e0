"""churn_nightly end to end under Airflow: `dag.test()` in the local profile for two consecutive
dates, then the first date again. Every task runs its platform command as a process (Spark steps
attached to one warm JVM); PostgreSQL must end with exactly one row per active customer per date,
equal to the Delta scores, and `scoring_runs` must record all three runs.
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

from churn.lake import delta_table
from tests.conftest import ROOT, generate_base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]  # three nights of eight tasks each
AIRFLOW = ROOT / ".venv" / "airflow" / "bin"
START = dt.date(2026, 3, 1)
D1, D2 = START + dt.timedelta(days=1), START + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def nightly(spark, champion, make_settings, postgres, tmp_path_factory):
    home = tmp_path_factory.mktemp("nightly-e2e")
    generate_base(home, 300, START, 3, seed=11)
    _, model = champion
    settings = make_settings(home, mlflow_uri=champion[0].mlflow_tracking_uri, label_horizon_days=7)
    from spark_jobs.pipeline import STEPS, run_steps

    run_steps(spark, settings, START, START, list(STEPS))  # the history before the first night
    db = f"e2e_{os.getpid()}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    pg_url = postgres.url.rsplit("/", 1)[0] + f"/{db}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW", "PYSPARK"))}
    env.update({f"CHURN_{k.upper()}": str(v) for k, v in settings.as_dict(redact=False).items() if k != "extra" and v not in ("", None)})
    gateway = home / "spark-gateway.json"
    env.update({
        "CHURN_PG_URL": pg_url, "CHURN_SPARK_GATEWAY": str(gateway), "CHURN_PLATFORM_PYTHON": sys.executable,
        "CHURN_AIRFLOW_PROFILE": "local", "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    jvm = subprocess.Popen([sys.executable, "-m", "churn", "spark-gateway"], env=env,
                           stdout=open(home / "spark-gateway.log", "w"), stderr=subprocess.STDOUT)
    try:
        subprocess.run([str(AIRFLOW / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        deadline = time.time() + 120
        while not gateway.exists():
            assert jvm.poll() is None and time.time() < deadline, (home / "spark-gateway.log").read_text()[-2000:]
            time.sleep(1)
        log, result = home / "run_nightly.log", home / "run_nightly.json"
        with open(log, "w") as out:
            proc = subprocess.run([str(AIRFLOW / "python"), str(ROOT / "tests" / "dags" / "run_nightly.py"),
                                   str(ROOT / "dags"), str(D1), str(D2), str(D1)], env={**env, "RUN_NIGHTLY_RESULT": str(result)},
                                  stdout=out, stderr=subprocess.STDOUT, timeout=2400)
    finally:
        jvm.terminate()
        jvm.wait(30)
    text = log.read_text()
    problems = "\n".join(line[:400] for line in text.splitlines() if "error" in line.lower() or "Traceback" in line)
    assert proc.returncode == 0, f"{problems[-6000:]}\n(full log: {log})"
    runs = json.loads(result.read_text())
    yield settings, pg_url, runs, problems
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_every_task_of_the_three_runs_succeeds(nightly):
    _, _, runs, log = nightly
    assert [r["date"] for r in runs] == [str(D1), str(D2), str(D1)]
    for r in runs:
        assert r["state"] == "success", (r, log[-6000:])
        assert list(r["tasks"]) and set(r["tasks"].values()) == {"success"}, r
        assert len(r["tasks"]) == 8


def test_postgres_holds_one_row_per_active_customer_per_date_equal_to_delta(nightly):
    settings, pg_url, _, _ = nightly
    with psycopg.connect(pg_url) as conn:
        for d in (D1, D2):
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
        assert dates == [D1, D2]
        # the latest view: the newest published day, one row per customer
        latest = conn.execute("SELECT count(*), count(DISTINCT customer_id), min(score_date), max(score_date) "
                              "FROM churn.customer_scores_latest").fetchone()
        assert latest == (len(delta), len(delta), D2, D2)


def test_scoring_runs_records_all_three_runs(nightly):
    _, pg_url, _, _ = nightly
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT score_date, status, rows_expected, rows_published FROM churn.scoring_runs "
                            "ORDER BY started_at").fetchall()
        published = dict(conn.execute("SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1").fetchall())
    assert [(r[0], r[1]) for r in runs] == [(D1, "succeeded"), (D2, "succeeded"), (D1, "succeeded")]
    for d, _, expected, n in runs:
        assert expected == n == published[d]
