"""churn_nightly end to end, the nightly pipeline through both of its runners on one lake, the way
an operator runs it on one machine, watched by Prometheus:

1. four weeks of history and D1 and D2 through `churn nightly`'s in-process runner (the lakehouse
   in one pass with weekly snapshots, then each night scored, published and monitored);
2. Airflow started by the platform's own command (`local/airflow.sh up`: scheduler with the
   LocalExecutor, dag-processor, API server, the DAGs unpaused), which at once schedules the latest
   night D3; beside it, the documented backfill (`airflow backfill create ... --max-active-runs 1`)
   reprocesses D2. The backfill and the scheduled night run at the same time; every task is its
   platform command as a process (Spark steps attached to one warm JVM);
3. the generator raises prices on D1: from that night on the monitor reports drift and requests a
   retrain (cooldown 0 here: every night may), a rerun of a night requests nothing new, and the
   scheduled night's request becomes an Asset event that gives churn_training a run of its own,
   which trains on the lake's labelled weeks and registers a new version (the weekly run does not
   start: it waits for its next Sunday);
4. every step pushes its metrics to a Pushgateway, a predictor serves some requests, and a real
   Prometheus scrapes both and evaluates the platform's alert rules.

Then, from Airflow's metadata database: no two lake-writing tasks ever overlapped, although the
runs did. The reprocessed nights' tables equal what the in-process runner built for them in order,
PostgreSQL holds exactly one row per active customer per date, equal to the Delta scores, and
`scoring_runs` records all four runs. The task logs carry no progress bars, and every Spark step
attached to the warm JVM (none started its own while it warmed up). Every metric a rule or a
dashboard panel names exists in Prometheus, and every panel's query returns data.
"""

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from churn.core.lake import delta_table
from churn.core.net import free_port
from tests.conftest import ROOT, generate_base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
AIRFLOW = ROOT / ".venv" / "airflow" / "bin"
#: Tables whose date partitions a night replaces (``scored_at`` is when, not what: left out).
PLANTED = {"pg": "pg-planted-e2e-91c2", "s3": "s3-planted-e2e-7f3a", "kfp": "kfp-planted-e2e-5d0e"}
PARTITIONED = {("gold", "customer_features"): "snapshot_date", ("gold", "customer_scores"): "score_date",
               ("gold", "labels"): "snapshot_date"}


def scheduled_night(now: dt.datetime) -> dt.date:
    """The night the scheduler runs once churn_nightly is unpaused (catchup off): the latest
    complete interval of ``0 2 * * *``, whose ds is the day before its 02:00 end."""
    end = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if end > now:
        end -= dt.timedelta(days=1)
    return (end - dt.timedelta(days=1)).date()


def now_clear_of_the_schedule() -> dt.datetime:
    """Now, waiting out the minutes just before 02:00 UTC, so the night computed is the one the
    scheduler creates and no second one falls due while the test runs."""
    now = dt.datetime.now(dt.timezone.utc)
    two = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if dt.timedelta(0) < two - now < dt.timedelta(minutes=10):
        time.sleep((two - now).total_seconds() + 60)
        now = dt.datetime.now(dt.timezone.utc)
    return now


def partition(settings, layer: str, name: str, day: dt.date) -> pd.DataFrame | None:
    table = delta_table(settings, layer, name)
    if table is None:  # labels: no horizon has closed yet
        return None
    df = table.to_pandas(filters=[(PARTITIONED[(layer, name)], "=", day)])
    df = df[sorted(c for c in df.columns if c != "scored_at")].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def metadata(airflow_home: Path, sql: str, args=()) -> list:
    for attempt in range(20):
        try:
            with sqlite3.connect(f"file:{airflow_home / 'airflow.db'}?mode=ro", uri=True, timeout=10) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # the scheduler holds the write lock a moment
            if attempt == 19:
                raise
            time.sleep(0.5)


#: Customers of the e2e base: enough churners in four labelled weeks for the retrain to fit on.
CUSTOMERS = 1000
HISTORY_DAYS = 28  # before D1: weekly snapshots, four of them labelled by D2 (7-day horizon)


@pytest.fixture(scope="module")
def nightly(spark, champion, make_settings, postgres, airflow_home, tmp_path_factory):
    import shutil

    from churn.core.pipeline import load_pipeline
    from churn.runner import run_pipeline
    from tests.support.servers import Observability

    t0 = time.monotonic()

    def phase(what):  # where the fixture's time goes (pytest -s, or the report of a failure)
        print(f"e2e {what}: {time.monotonic() - t0:.0f} s", flush=True)

    d3 = scheduled_night(now_clear_of_the_schedule())
    start = d3 - dt.timedelta(days=2)
    dates = [start + dt.timedelta(days=i) for i in range(3)]
    history = start - dt.timedelta(days=HISTORY_DAYS)
    home = tmp_path_factory.mktemp("nightly-e2e")
    # the generator's drift knob: prices rise 10 % on D1
    generate_base(home, CUSTOMERS, history, HISTORY_DAYS + 3, seed=11, drift="price_rise", drift_date=dates[0])
    phase("generated")
    db = f"e2e_{os.getpid()}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    # the champion's MLflow store, copied: the retrain this test triggers registers (and may promote)
    # a version here, never in the store the other tests score with
    (home / "mlflow").mkdir()
    shutil.copy(Path(champion[0].mlflow_tracking_uri[len("sqlite:///"):]), home / "mlflow" / "mlflow.db")
    predictor_port = free_port()
    watch = Observability(home / "prometheus", ROOT / "helm" / "churn-platform" / "files" / "prometheus" / "rules.yaml",
                          predictors=(f"127.0.0.1:{predictor_port}",)).start()
    # known values planted in every secret setting the night uses (trust auth and moto accept any
    # password and secret key): none may show up in a log, an output, a report or a table
    pg_url = postgres.url.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PLANTED['pg']}@") + f"/{db}"
    settings = make_settings(home, label_horizon_days=7, pg_url=pg_url, retrain_cooldown_days=0,
                             pushgateway_url=watch.pushgateway_url, s3_secret_key=PLANTED["s3"],
                             kfp_host=f"http://kfp:{PLANTED['kfp']}@127.0.0.1:9")
    # 1. the in-process runner: the history and D1, D2 in one pass of the lakehouse steps (weekly
    # snapshots, the end date always; what nights in order build, tests/spark_jobs/test_lakehouse.py),
    # then each date scored, published and monitored
    lakehouse = [s.name for s in load_pipeline("nightly").steps if s.ranges or not s.dated]
    run_pipeline(settings, history, dates[1], steps=lakehouse, every=7, spark=spark)
    phase("history built")
    # the weekly snapshot a horizon before D1, scored: D1's monitor measures its realized performance
    run_pipeline(settings, dates[0] - dt.timedelta(days=7), steps=["score"], spark=spark)
    monitored = {}
    for d in dates[:2]:
        monitored[d] = run_pipeline(settings, d, steps=["score", "publish", "monitor"], spark=spark)["monitor"]
    in_order = {(t, dates[1]): partition(settings, *t, dates[1]) for t in PARTITIONED}
    phase("D1, D2 scored, published, monitored")

    # 2. Airflow, as `make airflow` starts it, with both churn DAGs
    dags = home / "dags"
    dags.mkdir()
    for name in ("churn_nightly.py", "churn_training.py", "churn_dags"):
        (dags / name).symlink_to(ROOT / "dags" / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW", "PYSPARK"))}
    env.update(settings.as_env())
    env.update({"CHURN_PG_URL": pg_url, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "CHURN_PIPELINES_FILE": str(ROOT / "churn" / "core" / "pipelines.yaml"),
                "CHURN_AIRFLOW_PORT": str(free_port())})
    airflow_sh = ["bash", str(ROOT / "local" / "airflow.sh")]
    up = subprocess.run([*airflow_sh, "up"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        phase("airflow up")
        for _ in range(5):  # SQLite, the embedded metadata database, refuses a writer while the scheduler writes
            backfill = subprocess.run([str(AIRFLOW / "airflow"), "backfill", "create", "--dag-id", "churn_nightly",
                                       "--from-date", str(dates[1]), "--to-date", str(dates[2]),
                                       "--max-active-runs", "1"], env=env, capture_output=True, text=True, timeout=120)
            if "database is locked" not in backfill.stderr:
                break
            time.sleep(2)
        assert backfill.returncode == 0, backfill.stderr[-3000:]
        wanted = {str(d) for d in dates[1:]}
        deadline = time.time() + 1500
        while True:
            runs = metadata(airflow_home, "SELECT run_id, date(logical_date), state, run_type, start_date, end_date "
                                          "FROM dag_run WHERE dag_id = 'churn_nightly'")
            trainings = metadata(airflow_home, "SELECT run_id, run_type, state, start_date, end_date FROM dag_run "
                                               "WHERE dag_id = 'churn_training'")
            relay = metadata(airflow_home, "SELECT t.state FROM task_instance t JOIN dag_run r ON t.dag_id = r.dag_id "
                                           "AND t.run_id = r.run_id WHERE t.dag_id = 'churn_nightly' AND "
                                           "t.task_id = 'monitor_churn_retrain_request' AND date(r.logical_date) = ?",
                             (str(dates[2]),))
            done = {r[1]: r for r in runs if r[2] in ("success", "failed")}
            nights_done = wanted <= set(done) and len(done) >= 2 or any(r[2] == "failed" for r in runs)
            no_request = relay and relay[0][0] in ("skipped", "failed", "upstream_failed")
            if nights_done and (no_request or any(t[2] in ("success", "failed") for t in trainings)):
                break
            assert time.time() < deadline, f"Airflow runs not done in 25 min: {runs} {trainings}"
            time.sleep(3)
        phase("airflow runs done")
        tasks = metadata(airflow_home, "SELECT r.run_id, date(r.logical_date), t.task_id, t.state, t.pool, "
                                       "t.start_date, t.end_date, t.try_number FROM task_instance t JOIN dag_run r "
                                       "ON t.dag_id = r.dag_id AND t.run_id = r.run_id WHERE t.dag_id = 'churn_nightly'")
        training_tasks = metadata(airflow_home, "SELECT task_id, state FROM task_instance WHERE dag_id = 'churn_training'")
        for t in sorted(tasks, key=lambda t: t[5] or ""):
            print(f"  {t[1]} {t[2]:<32} {t[3]:<8} {t[5]} -> {t[6]}")
        for t in metadata(airflow_home, "SELECT task_id, state, start_date, end_date FROM task_instance "
                                        "WHERE dag_id = 'churn_training' ORDER BY start_date"):
            print(f"  training {t[0]:<28} {t[1]:<8} {t[2]} -> {t[3]}")
        events = metadata(airflow_home, "SELECT e.extra, e.source_dag_id, e.source_task_id, e.source_run_id FROM "
                                        "asset_event e JOIN asset a ON a.id = e.asset_id "
                                        "WHERE a.name = 'churn_retrain_request'")
    finally:
        down = subprocess.run([*airflow_sh, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    logs = "\n".join(p.read_text(errors="replace") for p in (airflow_home / "logs").rglob("*") if p.is_file())
    # a publish that fails after connecting (no scores for that date): its error goes to the
    # terminal and to churn.scoring_runs, which the CRM role reads
    failed = subprocess.run([sys.executable, "-m", "churn", "publish", "--date", str(start - dt.timedelta(days=30))],
                            env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "error" in failed.stderr, failed.stderr[-2000:]
    (home / "failed-publish.log").write_text(failed.stdout + failed.stderr)
    # 4. the predictor, scraped by Prometheus, answers some requests
    served = serve_some_requests(env, home, predictor_port, settings, dates[2])
    phase("requests served")
    airflow = {"runs": runs, "tasks": tasks, "trainings": trainings, "training_tasks": training_tasks,
               "events": events, "monitored": monitored, "served": served}
    try:
        yield settings, pg_url, dates, runs, tasks, in_order, logs, airflow, watch
    finally:
        watch.stop()
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def serve_some_requests(env: dict, home: Path, port: int, settings, night: dt.date) -> dict:
    """`churn serve` on the published night, while Prometheus scrapes it: good requests, an unknown
    customer (404) and a malformed one (400); what it answered."""
    import json
    import urllib.error
    import urllib.request

    ids = delta_table(settings, "gold", "customer_scores").to_pandas(
        columns=["customer_id"], filters=[("score_date", "=", night)])["customer_id"].tolist()[:40]
    log = home / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "churn", "serve", "--port", str(port)], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def call(path, body=None):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if call("/v2/models/churn/ready") == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        codes = [call("/v1/models/churn:predict", {"instances": [{"customer_id": c}]}) for c in ids]
        codes += [call("/v1/models/churn:predict", {"instances": [{"customer_id": "NOPE-1"}]}),
                  call("/v1/models/churn:predict", {"instances": [{"customer_id": ids[0], "colour": "red"}]})]
        time.sleep(4)  # a few scrapes (every second) after the last request
        return {"codes": codes}
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_backfill_and_the_scheduled_night_succeed_quietly(nightly):
    from churn.core.pipeline import load_pipeline

    _, _, dates, runs, tasks, _, logs, *_ = nightly
    by_date = {r[1]: r for r in runs}
    assert sorted(by_date) == [str(d) for d in dates[1:]], runs
    assert {r[1]: r[3] for r in runs} == {str(dates[1]): "backfill", str(dates[2]): "scheduled"}
    assert {r[2] for r in runs} == {"success"}, [t for t in tasks if t[3] not in ("success", "skipped")]
    relay = "monitor_churn_retrain_request"
    for d in dates[1:]:  # every declared step ran and succeeded (their order: tests/dags/test_dag_integrity.py)
        assert sorted(t[2] for t in tasks if t[1] == str(d) and t[2] != relay) == sorted(load_pipeline("nightly").names), d
        assert {t[3] for t in tasks if t[1] == str(d) and t[2] != relay} == {"success"}, d
    # the relay of the retrain request: skipped for the backfilled D2 (its request was made in
    # process already), an Asset event for the scheduled D3
    assert {t[1]: t[3] for t in tasks if t[2] == relay} == {str(dates[1]): "skipped", str(dates[2]): "success"}
    # a task log is not a terminal: no progress bars (GX draws hundreds of lines a night on one)
    assert "Calculating Metrics" not in logs and "it/s]" not in logs
    # every Spark step attached to the warm JVM, the scheduled night's first ones while it warmed up
    spark_steps = [t for t in tasks if t[2] in {s.name for s in load_pipeline("nightly").steps if s.kind == "spark"}]
    assert logs.count("shared JVM") >= len(spark_steps) and "no warm JVM there" not in logs

def test_lake_writing_tasks_never_overlap_although_the_runs_do(nightly):
    from churn.core.pipeline import load_pipeline

    _, _, _, runs, tasks, _, _, *_ = nightly
    writers = {s.name for s in load_pipeline("nightly").steps if s.writes_lake}
    spans = sorted((dt.datetime.fromisoformat(t[5]), dt.datetime.fromisoformat(t[6]), t[1], t[2])
                   for t in tasks if t[2] in writers)
    assert len(spans) == 2 * len(writers) and {t[4] for t in tasks if t[2] in writers} == {"churn_lake_writers"}
    for before, after in zip(spans, spans[1:]):
        assert before[1] <= after[0], f"{before[2:]} and {after[2:]} wrote the lake at the same time"
    # the runs themselves overlapped: the backfill was running while the scheduled night ran
    (scheduled,) = [r for r in runs if r[3] == "scheduled"]
    backfill = [r for r in runs if r[3] == "backfill"]
    assert any(b[4] < scheduled[5] and scheduled[4] < b[5] for b in backfill), runs


def test_reprocessed_nights_equal_the_nights_run_in_order(nightly):
    settings, _, dates, _, _, in_order, _, *_ = nightly
    assert in_order[(("gold", "customer_scores"), dates[1])] is not None
    for (table, d), want in in_order.items():
        got = partition(settings, *table, d)
        if want is None:
            assert got is None, (table, d)
        else:
            pd.testing.assert_frame_equal(got, want, obj=f"{table} {d}")


def test_postgres_holds_one_row_per_active_customer_per_date_equal_to_delta(nightly):
    settings, pg_url, dates, *_ = nightly
    with psycopg.connect(pg_url) as conn:
        for d in dates:
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
        (published,) = conn.execute("SELECT array_agg(DISTINCT score_date ORDER BY score_date) "
                                    "FROM churn.customer_scores").fetchone()
        assert published == dates
        # the latest view: the newest published day, one row per customer
        latest = conn.execute("SELECT count(*), count(DISTINCT customer_id), min(score_date), max(score_date) "
                              "FROM churn.customer_scores_latest").fetchone()
        assert latest == (len(delta), len(delta), dates[-1], dates[-1])


def test_scoring_runs_records_all_four_runs(nightly):
    _, pg_url, dates, *_ = nightly
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT score_date, status, rows_expected, rows_published FROM churn.scoring_runs "
                            "ORDER BY started_at").fetchall()
        published = dict(conn.execute("SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1").fetchall())
    runs = [r for r in runs if r[1] != "failed"]  # the fixture's failed publish: tested below
    assert [r[0] for r in runs[:2]] == dates[:2]  # in process, in order; then Airflow's two in any order
    assert sorted(r[0] for r in runs[2:]) == dates[1:] and {r[1] for r in runs} == {"succeeded"}
    for d, _, expected, n in runs:
        assert expected == n == published[d]


def test_planted_secrets_appear_in_no_log_output_report_or_table(nightly, airflow_home, monkeypatch):
    """Every file the night and the failed publishes left (logs, task logs, reports, raw and lake
    files), every Delta table's rows, and every row of every PostgreSQL table: none holds a planted
    secret. A publish that fails mid-load with the connection string in its error (as a driver
    words it) records the error in churn.scoring_runs, redacted."""
    from churn.core.lake import LAKE_TABLES
    from churn.warehouse import publish

    settings, pg_url, dates, *_ = nightly
    home = Path(settings.home)

    def broken_copy(*args, **kwargs):
        raise RuntimeError(f"COPY failed: connection to {pg_url} lost (key {settings.s3_secret_key})")

    monkeypatch.setattr(publish, "_load", broken_copy)
    with pytest.raises(RuntimeError, match="COPY failed"):
        publish.publish(settings, dates[-1])
    found = []
    for root in (home, airflow_home):
        for f in root.rglob("*"):
            if f.is_file() and f.stat().st_size < 50_000_000:
                data = f.read_bytes()
                found += [(str(f), k) for k, v in PLANTED.items() if v.encode() in data]
    for layer, name in LAKE_TABLES:
        table = delta_table(settings, layer, name)
        text = table.to_pandas().to_csv() if table is not None else ""
        found += [(f"{layer}/{name}", k) for k, v in PLANTED.items() if v in text]
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'churn%'").fetchall()
        for schema, table in tables:
            text = "\n".join(r[0] for r in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'))
            found += [(f"{schema}.{table}", k) for k, v in PLANTED.items() if v in text]
        (error,) = conn.execute("SELECT error FROM churn.scoring_runs WHERE status = 'failed'").fetchone()
    assert not found, found
    assert error.startswith("RuntimeError: COPY failed: connection to postgresql://postgres:***@"), error
    assert "error" in (home / "failed-publish.log").read_text()


def lake_state(settings) -> dict:
    """Every lake table's rows (``scored_at`` left out: when, not what), comparable as frames."""
    from churn.core.lake import LAKE_TABLES

    state = {}
    for layer, name in LAKE_TABLES:
        table = delta_table(settings, layer, name)
        if table is None:
            continue
        df = table.to_pandas()
        df = df[sorted(c for c in df.columns if c != "scored_at")].astype(str)
        state[(layer, name)] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return state


def published(pg_url: str, day: dt.date) -> list:
    with psycopg.connect(pg_url) as conn:
        scores = conn.execute("SELECT customer_id, churn_probability, risk_decile, risk_band, reason_1_feature, "
                              "model_version FROM churn.customer_scores WHERE score_date = %s ORDER BY 1", (day,)).fetchall()
        online = conn.execute("SELECT count(*), count(DISTINCT customer_id) FROM churn.online_features "
                              "WHERE snapshot_date = %s", (day,)).fetchone()
    return [scores, online]


def test_a_step_killed_at_a_random_point_and_run_again_leaves_the_clean_nights_tables(nightly, spark):
    """kill -9, at a seeded random moment, each step of the scheduled night run as its own command
    (the step and its JVM: the whole process group), then run that step again, as Airflow's retry
    does, and go on to the next. The lake's tables and the published rows end equal to the clean
    night's (Airflow's run of it, above)."""
    import random
    import signal

    from churn.core.lock import current_holder
    from churn.core.pipeline import load_pipeline
    from churn.runner import run_pipeline

    from ml.registry import CHAMPION, Registry

    settings, pg_url, dates, _, tasks, _, _, *_ = nightly
    night = dates[-1]
    clean_lake, clean_rows = lake_state(settings), published(pg_url, night)
    # the retrain the night requested may have promoted a new champion since: rescore with the
    # night's own model, as an operator pins it (`churn promote --version V`)
    registry = Registry(settings)
    (night_version,) = {row[-1] for row in clean_rows[0]}
    if registry.alias_version(settings.model_name, CHAMPION) != night_version:
        registry.promote(settings.model_name, night_version, "kill trials: rerun the night with its own model")
    took = {t[2]: (dt.datetime.fromisoformat(t[6]) - dt.datetime.fromisoformat(t[5])).total_seconds()
            for t in tasks if t[1] == str(night)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "PYSPARK"))}
    env.update({**settings.as_env(), "CHURN_PG_URL": pg_url})
    rng = random.Random(20261130)
    trials = []
    for step in load_pipeline("nightly").steps:
        cmd = [sys.executable, "-m", step.module, *(["--date", str(night)] if step.dated else [])]
        # a point inside the step: its own start (a JVM for a Spark step) plus a share of its work;
        # a step that ends first is run again with a point inside the time it took (a quick step,
        # such as wait_for_drops with its drops there, can end in 0.2 s on an idle machine)
        at = rng.uniform(0.3, (8.0 if step.kind == "spark" else 1.0) + took[step.name])
        for _ in range(6):
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                proc.wait(at)
                at = rng.uniform(0.1, 0.9) * (time.monotonic() - t0)
                landed = "after it ended"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                landed = "mid-step"
                break
        assert current_holder(settings) is None, f"{step.name}: the lake's lock outlived its killed holder"
        run_pipeline(settings, night, steps=[step.name], spark=spark)  # the retry
        trials.append((step.name, round(at, 1), landed))
    print("kill -9 trials (step, seconds, where it landed):", trials)
    after = lake_state(settings)
    assert sorted(after) == sorted(clean_lake)
    for table, want in clean_lake.items():
        pd.testing.assert_frame_equal(after[table], want, obj=str(table))
    assert published(pg_url, night) == clean_rows
    assert [t for t in trials if t[2] != "mid-step"] == [], "steps never killed mid-way"


def test_drifted_nights_request_a_retrain_once_each_and_airflow_trains_on_the_request(nightly):
    """The monitor's request of the scheduled night became an event of the Asset churn_retrain_request
    (carrying the night, the reasons and the report), Airflow's scheduler gave churn_training an
    asset-triggered run, and that run trained on the lake's labelled weeks, registered a new version
    and recorded the gate's decision as the answer to the request."""
    import json

    from ml.registry import Registry

    settings, _, dates, *_, airflow, _ = nightly
    for d, result in airflow["monitored"].items():  # in process: the price rise is reported from its night on
        assert result["retrain"]["requested"] is True and result["drifted_importance"] >= settings.drift_retrain_share, d
        assert "monthly_charges" in result["drifted_features"], (d, result["drifted_features"])
    # D1 closed the horizon of the snapshot a week before it: its realized performance was measured
    realized = airflow["monitored"][dates[0]]["realized"]
    assert realized["score_date"] == str(dates[0] - dt.timedelta(days=7)) and 0 < realized["roc_auc"] <= 1
    (event,) = airflow["events"]
    extra = json.loads(event[0])
    assert (event[1], event[2]) == ("churn_nightly", "monitor_churn_retrain_request")
    assert extra["night"] == str(dates[2]) and extra["retrain"]["requested"] is True
    assert extra["retrain"]["reasons"][0].startswith("drift: features carrying") and extra["report"].endswith("drift.html")
    (training,) = airflow["trainings"]
    assert training[1] == "asset_triggered" and training[2] == "success", airflow["trainings"]
    assert dict(airflow["training_tasks"]) == {"train_pipeline": "success", "report_decision": "success"}
    registry = Registry(settings)
    hist = registry.history(settings.model_name)
    requests = hist[(hist["event"] == "retrain_request") & hist["night"].isin([str(d) for d in dates])]
    assert requests["night"].tolist() == [str(d) for d in dates]  # D2's rerun in Airflow requested nothing new
    gate = list(hist[hist["event"] == "gate"].itertuples())[-1]  # the last: the champion's own came first
    assert gate.time > requests["time"].max() and gate.training_run
    assert gate.trigger.startswith(f"night {dates[2]}: drift: features carrying"), gate.trigger
    versions = registry.client.search_model_versions(f"name = '{settings.model_name}'")
    assert int(gate.version) == max(int(v.version) for v in versions) and len(versions) >= 2


def test_prometheus_has_every_metric_the_rules_and_dashboards_name_and_every_panel_returns_data(nightly):
    """A real Prometheus scraped the Pushgateway every step of every night pushed to (in process and
    in Airflow) and the predictor that served requests; its rules loaded and evaluated cleanly."""
    from tests.helm.test_monitoring import builder, metric_names, rule_exprs

    *_, airflow, watch = nightly
    codes = airflow["served"]["codes"]
    assert codes.count(200) == len(codes) - 2 and sorted(codes[-2:]) == [400, 404], codes
    import time as clock

    now = clock.time()
    # every second, as Prometheus scraped: the predictor's series live only the few seconds it served
    # (then go stale), which a 5 s grid could step over
    window = {"start": now - 3600, "end": now, "step": 1}
    present = set(watch.query("label/__name__/values")["data"])
    named = {m for _, e in rule_exprs() for m in metric_names(e)} | {
        m for _, _, e in builder().queries() for m in metric_names(e)}
    assert sorted(named - present) == [], "named by a rule or a panel, never seen by Prometheus"
    empty = []
    for board, title, expr in builder().queries():
        answer = watch.query("query_range", query=expr, **window)
        assert answer["status"] == "success", (board, title, expr, answer)
        if not answer["data"]["result"]:
            empty.append((board, title, expr))
    assert empty == [], "panels whose query returned no data"
    groups = watch.query("rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(rule_exprs()) and {r["health"] for r in rules} == {"ok"}, rules
    # what was pushed is what happened: the scheduled night's published rows, the monitor's verdict
    pushed = watch.query("query", query='churn_rows_published{job="churn_nightly"}')["data"]["result"]
    assert pushed and float(pushed[0]["value"][1]) > 250
    drifted = watch.query("query", query='churn_drift_importance_share{job="churn_nightly"}')["data"]["result"]
    assert float(drifted[0]["value"][1]) >= 0.10
    firing = {a["labels"]["alertname"] for a in watch.query("alerts")["data"]["alerts"]}
    assert "ChurnDriftOverThreshold" in firing and "ChurnNightlyMissing" not in firing, firing
