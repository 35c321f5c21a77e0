"""Publishing scores to PostgreSQL: migrations, COPY + atomic swap, reruns, reconciliation, a killed
publish, and the CRM role's limits. Real PostgreSQL on loopback; the Delta scores are written with
delta-rs in the shape the score job writes."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from churn.warehouse import db
from churn.core.feature_defs import FEATURES
from churn.core.errors import ConfigError, InputError
from churn.warehouse.publish import ReconciliationFailed, publish

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
REASON = pa.struct([("feature", pa.string()), ("description", pa.string()), ("value", pa.string()),
                    ("contribution", pa.float64())])
SCHEMA = pa.schema([("customer_id", pa.string()), ("score_date", pa.date32()), ("churn_probability", pa.float64()),
                    ("risk_decile", pa.int32()), ("risk_band", pa.string()), ("reasons", pa.list_(REASON)),
                    ("model_name", pa.string()), ("model_version", pa.string()), ("model_run_id", pa.string()),
                    ("scored_at", pa.timestamp("us", tz="UTC"))])


REASONS = [{"feature": "contract", "description": "Contract type on D", "value": "Month-to-month", "contribution": 0.5},
           {"feature": "tenure_months", "description": "Months since signup, on D", "value": "1.5", "contribution": 0.25},
           {"feature": "sessions_7d", "description": "Sessions in the 7 days up to D", "value": None,
            "contribution": 0.125}]


def scores(d, customers, version="1", dup=False):
    ids = [f"C{i:05d}" for i in customers] + (["C00000"] if dup else [])
    n = len(ids)
    p = [((i * 37) % 100) / 100 for i in range(n)]
    return pd.DataFrame({
        "customer_id": ids, "score_date": d, "churn_probability": p,
        "risk_decile": [10 - min(9, int(x * 10)) for x in p], "risk_band": ["high" if x >= .3 else "low" for x in p],
        "reasons": [REASONS[: i % 4] for i in range(n)],  # 0 to 3 reasons
        "model_name": "churn", "model_version": version, "model_run_id": f"run{version}",
        "scored_at": pd.Timestamp("2026-03-01", tz="UTC")})


@pytest.fixture
def settings(make_settings, tmp_path, pg_url):
    return make_settings(tmp_path, pg_url=pg_url)


def write(settings, frame, d):
    """D's scores, and the feature rows they were computed from (as the features and score jobs write them)."""
    write_deltalake(settings.table_uri("gold", "customer_scores"), pa.Table.from_pandas(frame, schema=SCHEMA,
                    preserve_index=False), partition_by=["score_date"], mode="overwrite", predicate=f"score_date = '{d}'")
    ids = frame["customer_id"].drop_duplicates().tolist()
    cols = {"customer_id": pa.array(ids), "snapshot_date": pa.array([d] * len(ids), pa.date32())}
    for f in FEATURES:
        if f.kind == "categorical":
            cols[f.name] = pa.array([f"{f.name}-{i % 3}" for i in range(len(ids))])
        else:
            cols[f.name] = pa.array([float(i) for i in range(len(ids))], pa.int32() if f.dtype == "int" else pa.float64())
    write_deltalake(settings.table_uri("gold", "customer_features"), pa.table(cols), partition_by=["snapshot_date"],
                    mode="overwrite", predicate=f"snapshot_date = '{d}'")


def query(settings, sql, *args):
    with psycopg.connect(settings.pg_url) as conn:
        return conn.execute(sql, args).fetchall()


def test_migrations_apply_once_and_refuse_edits(settings, tmp_path):
    assert db.upgrade(settings) == ["0001_scores.sql", "0002_partitioned_scores.sql", "0003_online_features.sql",
                                    "0004_publisher_role.sql", "0005_monitoring.sql", "0006_customer_id_bytes.sql"]
    assert db.upgrade(settings) == []
    comments = query(settings, "SELECT obj_description('churn.customer_scores'::regclass)")
    assert "one row per customer per score date" in comments[0][0]
    edited = tmp_path / "migrations"
    edited.mkdir()
    (edited / "0001_scores.sql").write_text(db.migrations()[0].sql + "\n-- edited\n")
    with pytest.raises(ConfigError, match="changed after it was applied"):
        db.upgrade(settings, edited)


def test_scores_published_under_0001_move_to_the_partitioned_table(settings, tmp_path):
    first = tmp_path / "only-0001"
    first.mkdir()
    (first / "0001_scores.sql").write_text(db.migrations()[0].sql)
    db.upgrade(settings, first)
    run = "00000000-0000-0000-0000-000000000001"
    with psycopg.connect(settings.pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO churn.scoring_runs (run_id, score_date, model_name, model_version, status) "
                     "VALUES (%s, %s, 'churn', '1', 'succeeded')", (run, D1))
        for cid, reasons in (("A", REASONS), ("B", [])):
            conn.execute("INSERT INTO churn.customer_scores VALUES (%s, %s, 0.4, 1, 'high', %s, 'churn', '1', 'r1', %s)",
                         (cid, D1, psycopg.types.json.Jsonb(reasons), run))
    assert db.upgrade(settings) == ["0002_partitioned_scores.sql", "0003_online_features.sql", "0004_publisher_role.sql",
                                    "0005_monitoring.sql", "0006_customer_id_bytes.sql"]
    rows = query(settings, "SELECT customer_id, reason_1_feature, reason_3_value, reason_3_contribution "
                           "FROM churn.customer_scores ORDER BY 1")
    assert rows == [("A", "contract", None, 0.125), ("B", None, None, None)]
    assert query(settings, "SELECT reasons FROM churn.customer_scores_latest WHERE customer_id = 'A'")[0][0] == REASONS
    assert query(settings, "SELECT count(*) FROM churn.features") == [(3,)]
    # new days publish next to the moved one
    write(settings, scores(D2, range(8)), D2)
    assert publish(settings, D2)["rows"] == 8
    assert dict(query(settings, "SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1")) == {D1: 2, D2: 8}


def test_reasons_become_columns_in_order():
    from churn.warehouse.publish import LOADED, flatten_reasons

    frame = scores(D1, range(6))
    frame.loc[5, "reasons"] = None
    batch = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False).to_batches()[0]
    table, described = flatten_reasons(batch)
    assert table.column_names == LOADED
    rows = table.to_pylist()
    assert [r["reason_1_feature"] for r in rows] == [None, "contract", "contract", "contract", None, None]
    assert [r["reason_2_contribution"] for r in rows] == [None, None, 0.25, 0.25, None, None]
    assert [r["reason_3_feature"] for r in rows] == [None, None, None, "sessions_7d", None, None]
    assert rows[3]["reason_3_value"] is None and rows[2]["reason_2_value"] == "1.5"
    assert described == {r["feature"]: r["description"] for r in REASONS}


def test_publish_reruns_and_latest(settings):
    db.upgrade(settings)
    write(settings, scores(D1, range(100)), D1)
    write(settings, scores(D2, range(10, 100), version="2"), D2)  # 10 customers left before D2
    first = publish(settings, D1)
    assert first["rows"] == 100
    publish(settings, D2)
    again = publish(settings, D1)  # a rerun of an older date
    assert again["rows"] == 100
    per_day = dict(query(settings, "SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1"))
    assert per_day == {D1: 100, D2: 90}
    assert query(settings, "SELECT count(*) FROM (SELECT customer_id, score_date FROM churn.customer_scores "
                           "GROUP BY 1, 2 HAVING count(*) > 1) x") == [(0,)]
    latest = dict(query(settings, "SELECT score_date, count(*) FROM churn.customer_scores_latest GROUP BY 1"))
    assert latest == {D2: 90}  # the newest published day (the active base); the D1 rerun changed nothing there
    runs = query(settings, "SELECT score_date, status, rows_expected, rows_published, model_version "
                           "FROM churn.scoring_runs ORDER BY started_at")
    assert runs == [(D1, "succeeded", 100, 100, "1"), (D2, "succeeded", 90, 90, "2"), (D1, "succeeded", 100, 100, "1")]
    by_customer = dict(query(settings, "SELECT customer_id, reasons FROM churn.customer_scores_latest"))
    assert by_customer["C00013"] == REASONS and by_customer["C00014"] == [] and by_customer["C00012"] == REASONS[:2]
    assert query(settings, "SELECT reason_1_feature, reason_2_value, reason_3_contribution FROM churn.customer_scores "
                           "WHERE customer_id = 'C00003' AND score_date = %s", D1) == [("contract", "1.5", 0.125)]
    # one partition per day, and nothing left in staging
    assert query(settings, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'churn.customer_scores'::regclass") == [(2,)]
    assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'churn_staging'") == [(0,)]


def test_a_duplicate_customer_aborts_and_publishes_nothing(settings):
    db.upgrade(settings)
    write(settings, scores(D1, range(50)), D1)
    publish(settings, D1)
    write(settings, scores(D1, range(60), dup=True), D1)  # a duplicated customer in the day's scores
    with pytest.raises(ReconciliationFailed, match="more than one row for a customer .*C00000"):
        publish(settings, D1)
    # 60 customers scored but a feature row missing: the COPY's stored count falls short of the scores'
    write(settings, scores(D1, range(59)), D1)
    write_deltalake(settings.table_uri("gold", "customer_scores"), pa.Table.from_pandas(
        scores(D1, range(60)), schema=SCHEMA, preserve_index=False), partition_by=["score_date"], mode="overwrite",
        predicate=f"score_date = '{D1}'")
    with pytest.raises(ReconciliationFailed, match="59 rows of gold/customer_features@v\\d+ reached staging for churn.online_features, "
                                                   "but 60 customers were scored"):
        publish(settings, D1)
    assert query(settings, "SELECT count(*) FROM churn.customer_scores WHERE score_date = %s", D1) == [(50,)]
    assert query(settings, "SELECT status FROM churn.scoring_runs ORDER BY started_at") == [
        ("succeeded",), ("failed",), ("failed",)]
    assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'churn_staging'") == [(0,)]


@pytest.mark.parametrize("decile, kind, error", [
    (40000, InputError, "column risk_decile \\(int32\\) does not fit PostgreSQL's int16"),
    (11, psycopg.errors.CheckViolation, "risk_decile_check")])
def test_a_bad_value_in_a_late_batch_fails_every_loader_and_publishes_nothing(make_settings, tmp_path, pg_url,
                                                                              decile, kind, error):
    """Scores travel in COPY's binary format, cast to the table's own types, over three connections in
    batches of 10 rows: a value that does not fit the column (refused by the cast) or breaks its
    check (refused by PostgreSQL mid-COPY) fails the publish with an error naming it, the other
    loaders end their COPY instead of waiting, and the day published before stays."""
    settings = make_settings(tmp_path, pg_url=pg_url, publish_connections=3)
    db.upgrade(settings)
    write(settings, scores(D1, range(100)), D1)
    publish(settings, D1, batch_rows=10)
    bad = scores(D1, range(120), version="2")
    bad.loc[97, "risk_decile"] = decile
    write(settings, bad, D1)
    with pytest.raises(kind, match=error):
        publish(settings, D1, batch_rows=10)
    assert query(settings, "SELECT count(*), min(model_version) FROM churn.customer_scores WHERE score_date = %s",
                 D1) == [(100, "1")]
    assert query(settings, "SELECT status FROM churn.scoring_runs ORDER BY started_at") == [("succeeded",), ("failed",)]
    assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'churn_staging'") == [(0,)]


def test_a_day_scored_by_two_models_is_refused_whether_the_log_or_the_rows_tell(settings):
    """Publish counts a day's rows and models from the Delta log's file statistics when each file
    holds one model, and from the rows otherwise: both ways, a day of two models publishes nothing."""
    from churn.warehouse.publish import _counts_from_log, delta_table

    db.upgrade(settings)
    write(settings, scores(D1, range(30)), D1)
    publish(settings, D1)
    assert _counts_from_log(delta_table(settings, "gold", "customer_scores"), D1) == {("churn", "1", "run1"): 30}
    # one file, two models: its bounds differ, so the rows are read
    write(settings, pd.concat([scores(D1, range(20)), scores(D1, range(20, 40), version="2")]), D1)
    assert _counts_from_log(delta_table(settings, "gold", "customer_scores"), D1) is None
    with pytest.raises(ReconciliationFailed, match="more than one model"):
        publish(settings, D1)
    # two files of one model each: the log tells
    write(settings, scores(D1, range(20)), D1)
    write_deltalake(settings.table_uri("gold", "customer_scores"),
                    pa.Table.from_pandas(scores(D1, range(20, 40), version="2"), schema=SCHEMA, preserve_index=False),
                    partition_by=["score_date"], mode="append")
    assert _counts_from_log(delta_table(settings, "gold", "customer_scores"), D1) == {
        ("churn", "1", "run1"): 20, ("churn", "2", "run2"): 20}
    with pytest.raises(ReconciliationFailed, match="more than one model"):
        publish(settings, D1)
    assert query(settings, "SELECT count(*), min(model_version) FROM churn.customer_scores WHERE score_date = %s",
                 D1) == [(30, "1")]


def test_a_killed_publish_leaves_the_published_day_intact(settings):
    db.upgrade(settings)
    write(settings, scores(D3, range(40)), D3)
    publish(settings, D3)
    before = query(settings, "SELECT customer_id, churn_probability FROM churn.customer_scores ORDER BY 1")
    write(settings, scores(D3, range(200), version="9"), D3)
    env = {**os.environ, **settings.as_env()}
    code = ("import datetime as dt; from churn.core.settings import load_settings; from churn.warehouse.publish import publish; "
            f"publish(load_settings(), dt.date({D3.year}, {D3.month}, {D3.day}), pause_after_load=60)")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until the load is in staging
            staged = query(settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'churn_staging'")
            if staged and query(settings, f"SELECT count(*) FROM churn_staging.{staged[0][0]}") == [(200,)]:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the publish never staged its rows")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert query(settings, "SELECT customer_id, churn_probability FROM churn.customer_scores ORDER BY 1") == before
    assert query(settings, "SELECT status FROM churn.scoring_runs ORDER BY started_at") == [("succeeded",), ("running",)]
    # the next publish cleans up after the killed one and succeeds
    assert publish(settings, D3)["rows"] == 200
    assert query(settings, "SELECT status FROM churn.scoring_runs ORDER BY started_at") == \
        [("succeeded",), ("failed",), ("succeeded",)]
    assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'churn_staging'") == [(0,)]


def test_crm_role_reads_published_tables_and_nothing_else(settings):
    db.upgrade(settings)
    write(settings, scores(D1, range(5)), D1)
    publish(settings, D1)
    with psycopg.connect(settings.pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE crm_alice LOGIN IN ROLE churn_crm_reader")
        conn.execute("CREATE TABLE churn_staging.scratch (x int)")
    crm = settings.pg_url.replace("postgresql://postgres@", "postgresql://crm_alice@")
    with psycopg.connect(crm, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM churn.customer_scores").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM churn.customer_scores_latest").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM churn.features").fetchone() == (3,)
        for sql in ("INSERT INTO churn.customer_scores_latest (customer_id) VALUES ('x')",
                    "DELETE FROM churn.customer_scores", "UPDATE churn.scoring_runs SET status = 'failed'",
                    "SELECT * FROM churn_staging.scratch", "CREATE TABLE churn.mine (x int)",
                    "UPDATE churn.features SET description = 'x'", f"SELECT * FROM churn.customer_scores_{D1:%Y%m%d}",
                    "SELECT * FROM churn.schema_migrations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    with psycopg.connect(settings.pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE crm_alice")


def test_the_publisher_owns_only_what_it_swaps(make_settings, tmp_path, pg_url):
    """Days published before migration 0004 (by the database owner) pass to churn_publisher; a login
    that is a member of it then republishes, prunes and publishes new days, and can do nothing else:
    no DDL on, or deletes from, what it does not swap. A login that is not a member is told how to
    fix it, and the published day stays."""
    owner = make_settings(tmp_path, pg_url=pg_url, pg_publish_role="none", online_features_keep=2)
    before = tmp_path / "before-0004"
    before.mkdir()
    for m in db.migrations()[:3]:
        (before / m.path.name).write_text(m.sql)
    db.upgrade(owner, before)
    write(owner, scores(D1, range(6)), D1)
    publish(owner, D1)  # as the owner, before the role exists
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE churn_staging.scores_20260301_left (x int)")  # a killed publish's load
    assert db.upgrade(owner) == ["0004_publisher_role.sql", "0005_monitoring.sql", "0006_customer_id_bytes.sql"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pub_carol, pub_dave")
        conn.execute("CREATE ROLE pub_carol LOGIN IN ROLE churn_publisher")
        conn.execute("CREATE ROLE pub_dave LOGIN")
    carol = make_settings(tmp_path, pg_url=pg_url.replace("postgres@", "pub_carol@"), online_features_keep=2)
    dave = make_settings(tmp_path, pg_url=pg_url.replace("postgres@", "pub_dave@"))
    try:
        write(owner, scores(D1, range(4)), D1)
        with pytest.raises(InputError, match="'pub_dave' of CHURN_PG_URL may not publish: it is not a member of "
                                             "'churn_publisher'.*GRANT churn_publisher TO pub_dave"):
            publish(dave, D1)
        assert query(owner, "SELECT count(*) FROM churn.customer_scores") == [(6,)]
        for d, n in ((D1, 4), (D2, 5), (D3, 7)):  # a rerun of the owner's day, new days, a prune
            write(owner, scores(d, range(n)), d)
            assert publish(carol, d)["rows"] == n
        assert dict(query(owner, "SELECT score_date, count(*) FROM churn.customer_scores GROUP BY 1")) == \
            {D1: 4, D2: 5, D3: 7}
        assert dict(query(owner, "SELECT snapshot_date, count(*) FROM churn.online_features GROUP BY 1")) == {D2: 5, D3: 7}
        # 0006: ids compare as bytes in the tables, the day published before it and the days after
        collations = query(owner, "SELECT c.relname, a.attcollation::regcollation::text FROM pg_attribute a "
                                  "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = 'churn' AND a.attname = 'customer_id' AND c.relkind IN ('r', 'p')")
        assert len(collations) == 7 and {c for _, c in collations} == {'"C"'}, collations
        owned = query(owner, "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE pg_get_userbyid(c.relowner) = 'churn_publisher' "
                             "AND c.relkind IN ('r', 'p', 'v') ORDER BY 1")
        days = [f"churn.customer_scores_{d:%Y%m%d}" for d in (D1, D2, D3)]
        assert [r[0] for r in owned] == ["churn.customer_scores", *days, "churn.online_features",
                                         *[f"churn.online_features_{d:%Y%m%d}" for d in (D2, D3)]]
        with psycopg.connect(carol.pg_url, autocommit=True) as conn:
            conn.execute("SET ROLE churn_publisher")
            for sql in ("DROP TABLE churn.scoring_runs", "DELETE FROM churn.scoring_runs", "TRUNCATE churn.features",
                        "ALTER TABLE churn.features ADD COLUMN x int", "DROP VIEW churn.customer_scores_latest",
                        "DELETE FROM churn.schema_migrations", "CREATE ROLE mallory",
                        "ALTER TABLE churn.scoring_runs DROP COLUMN error", "DROP SCHEMA churn_staging"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE pub_carol, pub_dave")


def test_unreachable_or_unset_database_is_a_clear_error(make_settings, tmp_path):
    with pytest.raises(ConfigError, match="CHURN_PG_URL is not set"):
        db.upgrade(make_settings(tmp_path))
    with pytest.raises(InputError, match="cannot connect to PostgreSQL at postgresql://nobody:\\*\\*\\*@127.0.0.1:9"):
        db.upgrade(make_settings(tmp_path, pg_url="postgresql://nobody:secret@127.0.0.1:9/x"))  # pragma: allowlist secret


def test_online_features_publish_with_the_scores_and_keep_the_newest_nights(make_settings, tmp_path, pg_url):
    settings = make_settings(tmp_path, pg_url=pg_url, online_features_keep=2)
    db.upgrade(settings)
    for d, n in ((D1, 30), (D2, 20), (D3, 10)):
        write(settings, scores(d, range(n)), d)
        publish(settings, d)
    write(settings, scores(D3, range(12)), D3)
    publish(settings, D3)  # a rerun replaces the night's features too
    per_night = dict(query(settings, "SELECT snapshot_date, count(*) FROM churn.online_features GROUP BY 1"))
    assert per_night == {D2: 20, D3: 12}  # the oldest night was dropped
    row = query(settings, "SELECT contract, tenure_months, senior_citizen FROM churn.online_features "
                          "WHERE customer_id = 'C00004' AND snapshot_date = %s", D3)
    assert row == [("contract-1", 4.0, 4.0)]
    with psycopg.connect(settings.pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE predictor_bob LOGIN IN ROLE churn_online_reader")
    bob = settings.pg_url.replace("postgresql://postgres@", "postgresql://predictor_bob@")
    try:
        with psycopg.connect(bob, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM churn.online_features").fetchone() == (32,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM churn.customer_scores")
    finally:
        with psycopg.connect(settings.pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE predictor_bob")


def test_two_publishes_of_one_date_at_once_end_as_exactly_one_published_day(settings):
    """Two processes publish D at the same moment (a rerun racing the scheduled night): D ends
    published once, whole, with no staging leftovers and no run left 'running'."""
    db.upgrade(settings)
    write(settings, scores(D1, range(3000)), D1)
    code = ("import datetime as dt, sys; from churn.core.settings import load_settings; "
            "from churn.warehouse.publish import publish; print('ready', flush=True); sys.stdin.readline(); "
            f"publish(load_settings(), dt.date({D1.year}, {D1.month}, {D1.day}))")
    env = {**os.environ, **settings.as_env()}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert 0 in [code for code, _ in results], results
    for code, err in results:  # the other one either published after it, or was refused, never half-done
        assert code == 0 or f"another publish of {D1} is running" in err, err[-2000:]
    assert query(settings, "SELECT count(*), count(DISTINCT customer_id) FROM churn.customer_scores "
                           "WHERE score_date = %s", D1) == [(3000, 3000)]
    assert query(settings, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                           "WHERE i.inhparent = 'churn.customer_scores'::regclass") == [(1,)]
    assert query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'churn_staging'") == [(0,)]
    statuses = [r[0] for r in query(settings, "SELECT status FROM churn.scoring_runs WHERE score_date = %s", D1)]
    assert "running" not in statuses and statuses.count("succeeded") == sum(code == 0 for code, _ in results)


def test_lock_waits_are_short_and_retried_and_a_blocked_prune_is_not_a_failed_night(make_settings, tmp_path, pg_url,
                                                                                     caplog):
    s = make_settings(tmp_path, pg_url=pg_url, publish_lock_timeout_seconds=0.3, publish_lock_attempts=3,
                      online_features_keep=1)
    db.upgrade(s)
    write(s, scores(D1, range(100)), D1)
    publish(s, D1)
    write(s, scores(D1, range(100), version="2"), D1)
    # a CRM report keeps a transaction open on the published scores for a while: the rerun's swap
    # waits in short slices, lets other readers through between them, and goes in once it ends
    with psycopg.connect(pg_url) as reader:
        reader.execute("SELECT count(*) FROM churn.customer_scores")  # ACCESS SHARE held until commit
        t = __import__("threading").Timer(1.5, reader.commit)
        t.start()
        t0 = time.time()
        publish(s, D1)
        t.join()
    assert 1.0 < time.time() - t0
    assert "waited 0.3s for locks held by other sessions; trying again" in caplog.text
    assert query(s, "SELECT DISTINCT model_version FROM churn.customer_scores WHERE score_date = %s", D1) == [("2",)]
    # a reader that never lets go: the swap gives up with a clear error, and D's published rows stay as they were
    write(s, scores(D1, range(100), version="3"), D1)
    with psycopg.connect(pg_url) as reader:
        reader.execute("SELECT count(*) FROM churn.customer_scores")
        with pytest.raises(Exception, match=f"the swap of {D1}: the tables stayed locked by other sessions through 3 "
                                            "attempts"):
            publish(s, D1)
    assert query(s, "SELECT DISTINCT model_version, count(*) FROM churn.customer_scores WHERE score_date = %s "
                    "GROUP BY 1", D1) == [("2", 100)]
    assert query(s, "SELECT status FROM churn.scoring_runs ORDER BY started_at DESC LIMIT 1") == [("failed",)]
    # the night is published, but pruning the older online-feature night cannot get its lock: logged, not failed
    write(s, scores(D2, range(100)), D2)
    with psycopg.connect(pg_url) as reader:
        reader.execute("SELECT count(*) FROM churn.online_features")
        result = publish(s, D2)
    assert result["rows"] == 100
    assert "pruning old online-feature nights failed" in caplog.text
    nights = lambda: [r[0] for r in query(s, "SELECT DISTINCT snapshot_date FROM churn.online_features ORDER BY 1")]  # noqa: E731
    assert nights() == [D1, D2]  # kept for now ...
    write(s, scores(D3, range(100)), D3)
    publish(s, D3)
    assert nights() == [D3]  # ... and pruned by the next publish


def test_a_database_owner_that_is_not_a_superuser_migrates_and_publishes(make_settings, tmp_path, pg_url):
    """Migrations as the database owner of a cluster (CREATEROLE, no superuser), then a publish as
    churn_publisher with that same login: what a managed PostgreSQL gives the platform."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS owner_olga")
        conn.execute("CREATE ROLE owner_olga LOGIN CREATEROLE")
        conn.execute(f"ALTER DATABASE {name} OWNER TO owner_olga")
    olga = make_settings(tmp_path, pg_url=pg_url.replace("postgres@", "owner_olga@"))
    try:
        assert len(db.upgrade(olga)) == len(db.migrations())
        write(olga, scores(D1, range(5)), D1)
        assert publish(olga, D1)["rows"] == 5
        assert query(olga, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'churn.customer_scores'::regclass") \
            == [("churn_publisher",)]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} OWNER TO postgres")
            conn.execute("REASSIGN OWNED BY owner_olga TO postgres")
            conn.execute("DROP OWNED BY owner_olga")
            conn.execute("DROP ROLE owner_olga")
