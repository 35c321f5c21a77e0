"""publish: ``gold/customer_scores`` for D -> PostgreSQL ``churn.customer_scores`` (``churn publish --date D``).

1. The day's scores are read from Delta (delta-rs, in Arrow batches: bounded memory) and bulk
   loaded with ``COPY`` into an unlogged staging table in ``churn_staging`` (invisible to CRM).
2. Reconciliation: the staging table must hold exactly the Delta row count, one row per customer;
   otherwise the publish aborts and nothing published changes.
3. Swap, in one transaction: D's rows of ``churn.customer_scores`` are replaced by the staging
   rows, ``churn.customer_scores_latest`` is brought up to date, and the ``churn.scoring_runs`` row
   is marked succeeded. A CRM reader sees the previous day-state or the new one, never a mix; a
   rerun of D leaves exactly one row per customer for D; a process killed at any point leaves the
   published tables as they were (the next publish drops its leftover staging table).

A session advisory lock per date keeps two publishes of the same date from interleaving.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
import uuid

from churn.db import connect
from churn.errors import ChurnError, InputError
from churn.lake import delta_table
from churn.settings import Settings

log = logging.getLogger("churn.publish")
COLUMNS = ["customer_id", "score_date", "churn_probability", "risk_decile", "risk_band", "reasons", "model_name",
           "model_version", "model_run_id"]


class ReconciliationFailed(ChurnError):
    """Row counts in PostgreSQL do not match the Delta scores; nothing was published."""


def _batches(settings: Settings, d: dt.date, batch_rows: int):
    import pyarrow.dataset as ds

    table = delta_table(settings, "gold", "customer_scores")
    if table is None:
        raise InputError(f"gold/customer_scores does not exist at {settings.table_uri('gold', 'customer_scores')}: "
                         f"run `churn score --date {d}` first")
    dataset = table.to_pyarrow_dataset()
    flt = ds.field("score_date") == ds.scalar(d)
    expected = dataset.count_rows(filter=flt)
    if expected == 0:
        raise InputError(f"gold/customer_scores has no rows for {d}: run `churn score --date {d}` first")
    meta = {"version": table.version(), "expected": expected}
    return meta, dataset.to_batches(columns=COLUMNS, filter=flt, batch_size=batch_rows)


def _csv(batch) -> bytes:
    frame = batch.to_pandas()
    frame["reasons"] = [json.dumps(list(r) if r is not None else [], separators=(",", ":")) for r in frame["reasons"]]
    buf = io.StringIO()
    frame[COLUMNS].to_csv(buf, index=False, header=False)
    return buf.getvalue().encode()


def publish(settings: Settings, d: dt.date, batch_rows: int = 200_000, pause_after_load: float = 0.0) -> dict:
    meta, batches = _batches(settings, d, batch_rows)
    run_id = uuid.uuid4()
    staging = f"churn_staging.scores_{d:%Y%m%d}_{run_id.hex[:12]}"
    t0 = time.time()
    with connect(settings, autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext('churn.publish'), %s)", (int(f"{d:%Y%m%d}"),)).fetchone()
        if not got[0]:
            raise InputError(f"another publish of {d} is running; try again when it has finished")
        _clean_leftovers(conn, d)
        conn.execute("""INSERT INTO churn.scoring_runs (run_id, score_date, model_name, model_version, status, rows_expected)
                        VALUES (%s, %s, '', '', 'running', %s)""", (run_id, d, meta["expected"]))
        try:
            conn.execute(f"CREATE UNLOGGED TABLE {staging} (LIKE churn.customer_scores INCLUDING DEFAULTS)")
            conn.execute(f"ALTER TABLE {staging} ALTER COLUMN scoring_run_id DROP NOT NULL")
            with conn.cursor() as cur, cur.copy(f"COPY {staging} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as cp:
                for batch in batches:
                    cp.write(_csv(batch))
            load_seconds = time.time() - t0
            loaded, distinct, models = conn.execute(
                f"SELECT count(*), count(DISTINCT customer_id), "
                f"array_agg(DISTINCT concat_ws(' ', model_name, model_version, coalesce(model_run_id, ''))) "
                f"FROM {staging}").fetchone()
            if loaded != meta["expected"] or distinct != loaded:
                raise ReconciliationFailed(
                    f"publish {d}: staging holds {loaded} rows ({distinct} customers) but gold/customer_scores@v"
                    f"{meta['version']} has {meta['expected']}: aborted, nothing published")
            if len(models) != 1:
                raise ReconciliationFailed(f"publish {d}: scores of more than one model in one day: {models}")
            model = (models[0].split(" ") + ["", ""])[:3]
            if pause_after_load:  # for the kill test: a window where the load is done and nothing is published
                time.sleep(pause_after_load)
            t1 = time.time()
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '60s'")
                conn.execute("DELETE FROM churn.customer_scores WHERE score_date = %s", (d,))
                published = conn.execute(
                    f"INSERT INTO churn.customer_scores ({', '.join(COLUMNS)}, scoring_run_id) "
                    f"SELECT {', '.join(COLUMNS)}, %s FROM {staging}", (run_id,)).rowcount
                _refresh_latest(conn, staging, d)
                conn.execute("""UPDATE churn.scoring_runs SET status = 'succeeded', model_name = %s, model_version = %s,
                                model_run_id = %s, rows_loaded = %s, rows_published = %s, finished_at = now(),
                                load_seconds = %s, publish_seconds = %s WHERE run_id = %s""",
                             (model[0], model[1], model[2] or None, loaded, published, load_seconds, time.time() - t1,
                              run_id))
        except BaseException as exc:
            conn.execute("""UPDATE churn.scoring_runs SET status = 'failed', finished_at = now(), error = %s
                            WHERE run_id = %s""", (f"{type(exc).__name__}: {exc}"[:2000], run_id))
            raise
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {staging}")
    secs = time.time() - t0
    log.info("published %s: %d rows of %s version %s in %.1fs (run %s)", d, published, model[0], model[1], secs, run_id)
    return {"date": str(d), "run_id": str(run_id), "rows": published, "model": model[0], "version": model[1],
            "seconds": round(secs, 2), "delta_version": meta["version"]}


def _clean_leftovers(conn, d: dt.date) -> None:
    """A publish of D killed earlier left a staging table and a 'running' row: clear both (we hold D's lock)."""
    for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'churn_staging' AND tablename LIKE %s",
                                (f"scores_{d:%Y%m%d}_%",)).fetchall():
        conn.execute(f"DROP TABLE IF EXISTS churn_staging.{name}")
    conn.execute("""UPDATE churn.scoring_runs SET status = 'failed', finished_at = now(),
                    error = 'the publishing process ended before finishing; nothing of it was published'
                    WHERE score_date = %s AND status = 'running'""", (d,))


def _refresh_latest(conn, staging: str, d: dt.date) -> None:
    cols = "customer_id, score_date, churn_probability, risk_decile, risk_band, reasons, model_name, model_version, " \
           "model_run_id, scoring_run_id"
    # customers whose latest row was D but who are not in D's new scores: back to their previous score
    conn.execute(f"""DELETE FROM churn.customer_scores_latest l WHERE l.score_date = %s
                     AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.customer_id = l.customer_id)""", (d,))
    conn.execute(f"""INSERT INTO churn.customer_scores_latest ({cols})
                     SELECT DISTINCT ON (c.customer_id) {', '.join('c.' + x.strip() for x in cols.split(','))}
                     FROM churn.customer_scores c
                     WHERE c.score_date < %s AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE s.customer_id = c.customer_id)
                       AND NOT EXISTS (SELECT 1 FROM churn.customer_scores_latest l WHERE l.customer_id = c.customer_id)
                     ORDER BY c.customer_id, c.score_date DESC""", (d,))
    conn.execute(f"""INSERT INTO churn.customer_scores_latest ({cols})
                     SELECT {cols} FROM churn.customer_scores WHERE score_date = %s
                     ON CONFLICT (customer_id) DO UPDATE SET
                       score_date = EXCLUDED.score_date, churn_probability = EXCLUDED.churn_probability,
                       risk_decile = EXCLUDED.risk_decile, risk_band = EXCLUDED.risk_band, reasons = EXCLUDED.reasons,
                       model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version,
                       model_run_id = EXCLUDED.model_run_id, scoring_run_id = EXCLUDED.scoring_run_id
                     WHERE EXCLUDED.score_date >= churn.customer_scores_latest.score_date""", (d,))
