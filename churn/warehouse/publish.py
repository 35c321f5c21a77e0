"""publish: ``gold/customer_scores`` for D -> PostgreSQL ``churn.customer_scores`` (the nightly's last step:
``python -m churn.warehouse.publish --date D``, or ``churn publish --date D``).

``churn.customer_scores`` has one partition per score date. A publish of D:

1. reads the day's scores from Delta with delta-rs in Arrow batches (bounded memory), unpacks the
   top-3 reasons into plain columns (vectorised, no per-row Python) and streams them with ``COPY``
   in PostgreSQL's binary format (pgpq encodes the Arrow columns, cast to the table's own types)
   into a new table in ``churn_staging`` (invisible to CRM), over ``publish_connections``
   parallel connections. The day's constants (date, model, run id) are
   column defaults of that table, not bytes on the wire;
2. reconciles: the rows the server reports each COPY stored must add up to exactly the Delta row
   count, and the table's primary key (built now, the index the partition needs anyway; the two
   tables' side by side, on two connections, each sort in ``publish_sort_memory_mb``) proves one row
   per customer; otherwise the publish aborts and nothing published changes;
3. swaps, in one short transaction: an earlier D partition is detached, the new table is attached
   as D's partition, ``churn.features`` gets the reasons' descriptions and the
   ``churn.scoring_runs`` row is marked succeeded. A CRM reader sees the previous day-state or the
   new one, never a mix (``churn.customer_scores_latest`` is a view of the newest succeeded day);
   a rerun of D leaves exactly one row per customer for D; a process killed at any point leaves
   the published tables as they were (the next publish drops its leftover tables).

A session advisory lock per date keeps two publishes of the same date from interleaving.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from churn.core.errors import ChurnError, InputError
from churn.core.lake import delta_table, read_batches
from churn.core.pg import as_publisher, connect  # noqa: F401 - as_publisher: also this module's API
from churn.core.pipeline import StepRun, step_main
from churn.core.scores import REASONS
from churn.core.settings import Settings, redact_text

log = logging.getLogger("churn.warehouse.publish")
#: Columns sent by COPY; the day's constants (score_date, model_*, scoring_run_id) are defaults.
LOADED = ["customer_id", "churn_probability", "risk_decile", "risk_band",
          *[f"reason_{k}_{f}" for k in range(1, REASONS + 1) for f in ("feature", "value", "contribution")]]
_READ = ["customer_id", "churn_probability", "risk_decile", "risk_band", "reasons"]
_MODEL = ["model_name", "model_version", "model_run_id"]


class ReconciliationFailed(ChurnError):
    """Row counts in PostgreSQL do not match the Delta scores; nothing was published."""


def flatten_reasons(batch) -> tuple:
    """A score batch (Arrow, ``reasons`` a list of structs) as the COPY columns, plus the
    (feature, description) pairs it names. Vectorised: the k-th reason of each row is gathered by
    its position in the flattened list."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    reasons = batch.column("reasons")
    n = len(reasons)
    flat = reasons.flatten()  # null lists contribute nothing
    parent = pc.list_parent_indices(reasons).to_numpy()
    offsets = reasons.offsets.to_numpy()
    position = np.arange(len(flat)) - offsets[parent]
    out = {c: batch.column(c) for c in LOADED[:4]}
    for k in range(REASONS):
        picked = position == k
        index = np.full(n, -1, dtype=np.int64)
        index[parent[picked]] = np.nonzero(picked)[0]
        take = pa.array(index, mask=index < 0)
        for f in ("feature", "value", "contribution"):
            out[f"reason_{k + 1}_{f}"] = flat.field(f).take(take)
    names = pa.Table.from_arrays([flat.field("feature"), flat.field("description")], names=["feature", "description"])
    described = names.group_by(["feature", "description"]).aggregate([]).to_pylist()
    return pa.table(out), {r["feature"]: r["description"] for r in described if r["feature"]}


#: PostgreSQL column types publish loads, as the Arrow types their binary COPY values are encoded from.
_ARROW_TYPES = {"text": "string", "double precision": "float64", "real": "float32", "smallint": "int16",
                "integer": "int32", "bigint": "int64", "date": "date32", "boolean": "bool"}


def copy_schema(conn, target: str, columns: list[str]):
    """The Arrow schema in which ``columns`` of the table ``target`` travel in COPY's binary format.
    That format carries each value in its column's exact type (4 bytes refused by a smallint), so a
    batch is cast to it first: the types come from the table itself, never from the Delta files."""
    import pyarrow as pa

    types = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                              "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (target,)).fetchall())
    fields = []
    for c in columns:
        pg_type = types.get(c)
        if pg_type is None:
            raise InputError(f"{target} has no column {c}; expected {', '.join(columns)} (run `churn db upgrade`)")
        arrow = _ARROW_TYPES.get("text" if pg_type.startswith("character varying") else pg_type)
        if arrow is None:
            raise InputError(f"{target}.{c} is {pg_type}; publish loads only {', '.join(sorted(_ARROW_TYPES))}")
        fields.append(pa.field(c, getattr(pa, arrow)()))
    return pa.schema(fields)


def as_copy_batches(table, schema, source: str):
    """``table``'s ``schema`` columns cast to their PostgreSQL types (a value that does not fit, such
    as a fraction for an integer column, is an error naming the column), as record batches."""
    import pyarrow as pa

    columns = []
    for field in schema:
        try:
            columns.append(table.column(field.name).cast(field.type))
        except KeyError:
            raise InputError(f"{source} has no column {field.name}, which {', '.join(schema.names)} need") from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{source}: column {field.name} ({table.schema.field(field.name).type}) does not fit "
                             f"PostgreSQL's {field.type}: {exc}") from None
    return pa.Table.from_arrays(columns, schema=schema).to_batches()


def _day(settings: Settings, d: dt.date):
    """The Delta dataset of D's scores: its version, row count and model(s)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    table = delta_table(settings, "gold", "customer_scores")
    if table is None:
        raise InputError(f"gold/customer_scores does not exist at {settings.table_uri('gold', 'customer_scores')}: "
                         f"run `churn score --date {d}` first")
    dataset = table.to_pyarrow_dataset()
    flt = ds.field("score_date") == ds.scalar(d)
    counts = _counts_from_log(table, d)
    if counts is None:  # (name, version, run id) -> rows, counted batch by batch
        counts = {}
        for batch in read_batches(dataset, _MODEL, flt, 1_000_000):
            part = pa.Table.from_batches([batch]).group_by(_MODEL).aggregate([("model_name", "count")])
            for row in part.to_pylist():
                key = tuple(row[c] for c in _MODEL)
                counts[key] = counts.get(key, 0) + row["model_name_count"]
    expected = sum(counts.values())
    if expected == 0:
        raise InputError(f"gold/customer_scores has no rows for {d}: run `churn score --date {d}` first")
    found = [dict(zip(_MODEL, key)) for key in counts]
    if len(found) != 1:
        raise ReconciliationFailed(f"publish {d}: gold/customer_scores@v{table.version()} holds scores of more than one "
                                   f"model for the day: {found}; rescore the day (`churn score --date {d}`)")
    return {"version": table.version(), "expected": expected, "model": found[0]}, dataset, flt


def _counts_from_log(table, d: dt.date) -> dict[tuple, int] | None:
    """D's rows per model, from the Delta log's file statistics alone (no row is read): each of D's
    files holds one model when its minimum and maximum agree on name, version and run id. None,
    and the rows are counted instead, when the statistics cannot tell: a file without them, with
    nulls, or with a value truncated in them (differing bounds), or deletion vectors in the table.
    A count that were wrong would still be caught: the load is reconciled against it."""
    import pyarrow as pa

    if "deletionVectors" in (table.protocol().reader_features or []):
        return None
    actions = pa.table(table.get_add_actions(flatten=True))
    bounds = [f"{b}.{c}" for b in ("min", "max", "null_count") for c in _MODEL]
    if not actions.num_rows or not {"num_records", "partition.score_date", *bounds} <= set(actions.column_names):
        return None
    counts: dict[tuple, int] = {}
    for f in actions.select(["num_records", "partition.score_date", *bounds]).to_pylist():
        if f["partition.score_date"] != d or f["num_records"] == 0:
            continue
        low, high = (tuple(f[f"{b}.{c}"] for c in _MODEL) for b in ("min", "max"))
        if f["num_records"] is None or low != high or None in low or any(f[f"null_count.{c}"] != 0 for c in _MODEL):
            return None
        counts[low] = counts.get(low, 0) + f["num_records"]
    return counts


def _load(settings: Settings, target: str, columns: list[str], batches, convert,
          source: str) -> tuple[dict[str, str], int]:
    """COPY ``batches`` (each made into ``columns`` by ``convert``, which also returns a dict of names
    seen) into ``target`` over parallel connections, in PostgreSQL's binary format (pgpq encodes the
    Arrow columns: no number is printed as text by us or parsed back by the server); the union of
    those dicts, and the rows the server says the COPYs stored (``target`` is new and only these
    COPYs write to it, so that is its row count, known without scanning it)."""
    import queue

    import psycopg
    from pgpq import ArrowToPostgresBinaryEncoder

    from churn.core.pg import CONNECT_ARGS, effective_url

    work: queue.Queue = queue.Queue(maxsize=2 * settings.publish_connections)
    described: dict[str, str] = {}
    errors: list[BaseException] = []
    stored: list[int] = []
    stop = threading.Event()
    copy_sql = f"COPY {target} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)"
    url = effective_url(settings)

    class Abandoned(Exception):
        """Another loader failed: this one's COPY ends in an error, so it loads nothing."""

    def loader() -> None:
        ended = False  # this loader has taken its end mark off the queue
        try:
            with psycopg.connect(url, autocommit=True, **CONNECT_ARGS) as conn:
                as_publisher(conn, settings)
                schema = copy_schema(conn, target, columns)
                encoder = ArrowToPostgresBinaryEncoder(schema)
                with conn.cursor() as cur:
                    with cur.copy(copy_sql) as cp:
                        cp.write(encoder.write_header())
                        while (batch := work.get()) is not None:
                            if stop.is_set():
                                continue  # drain: the reader must never block on a dead loader
                            table, names = convert(batch)
                            described.update(names)
                            for part in as_copy_batches(table, schema, source):
                                cp.write(encoder.write_batch(part))
                        ended = True
                        if stop.is_set():
                            raise Abandoned
                        cp.write(encoder.finish())
                    stored.append(cur.rowcount)  # the server's "COPY n" (closing the cursor forgets it)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            if not isinstance(exc, Abandoned):
                errors.append(exc)
            stop.set()
            while not ended and work.get() is not None:
                pass

    threads = [threading.Thread(target=loader, daemon=True) for _ in range(settings.publish_connections)]
    for t in threads:
        t.start()
    try:
        for batch in batches:
            if stop.is_set():
                break
            work.put(batch)
    finally:
        for _ in threads:
            work.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return described, sum(stored)


@dataclass
class _Day:
    """One published table of D: loaded into ``churn_staging.<load>``, attached as D's partition of
    ``churn.<parent>``."""

    parent: str
    key: str
    load: str
    d: dt.date

    @property
    def partition(self) -> str:
        return f"{self.parent}_{self.d:%Y%m%d}"

    def create(self, conn, defaults: dict) -> None:
        conn.execute(f"CREATE TABLE churn_staging.{self.load} (LIKE churn.{self.parent} INCLUDING DEFAULTS "
                     f"INCLUDING CONSTRAINTS, CHECK ({self.key} = DATE '{self.d}'))")
        conn.execute(f"ALTER TABLE churn_staging.{self.load} "
                     + ", ".join(f"ALTER COLUMN {c} SET DEFAULT {_literal(conn, v)}" for c, v in defaults.items()))

    def seal(self, conn, loaded: int, expected: int, source: str) -> int:
        """Reconcile the ``loaded`` row count, then build the primary key (which proves one row per customer)."""
        from psycopg.errors import UniqueViolation

        if loaded != expected:
            raise ReconciliationFailed(f"publish {self.d}: {loaded} rows of {source} reached staging for "
                                       f"churn.{self.parent}, but {expected} customers were scored: aborted, "
                                       "nothing published")
        try:
            conn.execute(f"ALTER TABLE churn_staging.{self.load} ADD PRIMARY KEY (customer_id, {self.key})")
        except UniqueViolation as exc:
            raise ReconciliationFailed(f"publish {self.d}: {source} has more than one row for a customer "
                                       f"({exc.diag.message_detail}): aborted, nothing published") from None
        return loaded

    def swap(self, conn) -> None:
        """Inside the publishing transaction: D's old partition out, the loaded table in."""
        if conn.execute("SELECT to_regclass(%s)", (f"churn.{self.partition}",)).fetchone()[0] is not None:
            conn.execute(f"ALTER TABLE churn.{self.parent} DETACH PARTITION churn.{self.partition}")
            conn.execute(f"ALTER TABLE churn.{self.partition} RENAME TO {self.load}_old")
            conn.execute(f"ALTER TABLE churn.{self.load}_old SET SCHEMA churn_staging")
        conn.execute(f"ALTER TABLE churn_staging.{self.load} SET SCHEMA churn")
        conn.execute(f"ALTER TABLE churn.{self.load} RENAME TO {self.partition}")
        conn.execute(f"ALTER TABLE churn.{self.parent} ATTACH PARTITION churn.{self.partition} FOR VALUES IN ('{self.d}')")

    def drop_leftovers(self, conn) -> None:
        conn.execute(f"DROP TABLE IF EXISTS churn_staging.{self.load}, churn_staging.{self.load}_old")


def _features_day(settings: Settings, d: dt.date):
    """D's rows of gold/customer_features, the columns of churn.online_features."""
    import pyarrow.dataset as ds

    from churn.core.feature_defs import FEATURE_NAMES

    table = delta_table(settings, "gold", "customer_features")
    if table is None:
        raise InputError(f"gold/customer_features does not exist at {settings.table_uri('gold', 'customer_features')}")
    dataset = table.to_pyarrow_dataset()
    flt = ds.field("snapshot_date") == ds.scalar(d)
    missing = [c for c in FEATURE_NAMES if c not in dataset.schema.names]
    if missing:
        raise InputError(f"gold/customer_features lacks feature column(s) {', '.join(missing)} that churn.online_features "
                         f"holds: rebuild the features of {d}")
    return table.version(), dataset, flt, ["customer_id", *FEATURE_NAMES]


def publish(settings: Settings, d: dt.date, batch_rows: int = 100_000, pause_after_load: float = 0.0) -> dict:
    import psycopg

    meta, dataset, flt = _day(settings, d)
    features_version, features, features_flt, feature_columns = _features_day(settings, d)
    model = meta["model"]
    run_id = uuid.uuid4()
    tag = f"{d:%Y%m%d}_{run_id.hex[:12]}"
    scores = _Day("customer_scores", "score_date", f"scores_{tag}", d)
    online = _Day("online_features", "snapshot_date", f"scores_{tag}_features", d)
    t0 = time.time()
    with connect(settings, autocommit=True) as conn:
        as_publisher(conn, settings)
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext('churn.publish'), %s)", (int(f"{d:%Y%m%d}"),)).fetchone()
        if not got[0]:
            raise InputError(f"another publish of {d} is running; try again when it has finished")
        _clean_leftovers(conn, d)
        conn.execute("""INSERT INTO churn.scoring_runs (run_id, score_date, model_name, model_version, model_run_id,
                        status, rows_expected) VALUES (%s, %s, %s, %s, %s, 'running', %s)""",
                     (run_id, d, model["model_name"], model["model_version"], model["model_run_id"], meta["expected"]))
        try:
            scores.create(conn, {"score_date": d, "scoring_run_id": run_id, **model})
            online.create(conn, {"snapshot_date": d})
            described, scores_loaded = _load(settings, f"churn_staging.{scores.load}", LOADED,
                              read_batches(dataset, _READ, flt, batch_rows), flatten_reasons,
                              f"gold/customer_scores@v{meta['version']}")
            _, online_loaded = _load(settings, f"churn_staging.{online.load}", feature_columns,
                  read_batches(features, feature_columns, features_flt, batch_rows), lambda batch: (batch, {}),
                  f"gold/customer_features@v{features_version}")
            load_seconds = time.time() - t0
            # the online features are the very rows that were scored: one per scored customer
            loaded = _seal_side_by_side(settings, conn, meta["expected"],
                                        (scores, scores_loaded, f"gold/customer_scores@v{meta['version']}"),
                                        (online, online_loaded, f"gold/customer_features@v{features_version}"))
            seal_seconds = time.time() - t0 - load_seconds
            if pause_after_load:  # for the kill test: a window where the load is done and nothing is published
                time.sleep(pause_after_load)
            t1 = time.time()

            def swap_and_mark() -> None:
                scores.swap(conn)
                online.swap(conn)
                with conn.cursor() as cur:
                    cur.executemany("""INSERT INTO churn.features (feature, description) VALUES (%s, %s)
                                       ON CONFLICT (feature) DO UPDATE SET description = EXCLUDED.description""",
                                    sorted(described.items()))
                conn.execute("""UPDATE churn.scoring_runs SET status = 'succeeded', rows_loaded = %s, rows_published = %s,
                                finished_at = now(), load_seconds = %s, publish_seconds = %s WHERE run_id = %s""",
                             (loaded, loaded, load_seconds, time.time() - t1, run_id))

            in_short_lock_waits(conn, swap_and_mark, settings.publish_lock_timeout_seconds,
                                settings.publish_lock_attempts, f"the swap of {d}")
        except BaseException as exc:
            conn.execute("""UPDATE churn.scoring_runs SET status = 'failed', finished_at = now(), error = %s
                            WHERE run_id = %s""", (redact_text(f"{type(exc).__name__}: {exc}", settings)[:2000], run_id))
            raise
        finally:
            scores.drop_leftovers(conn)
            online.drop_leftovers(conn)
        try:  # the night is published: a prune that cannot get its locks is tomorrow's work, not a failure
            _prune_online_features(conn, settings)
        except (psycopg.Error, InputError) as exc:
            log.warning("published %s, but pruning old online-feature nights failed (%s); the next publish "
                        "prunes them", d, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    secs = time.time() - t0
    log.info("published %s: %d rows of %s version %s in %.1fs (load %.1fs, keys and checks %.1fs; run %s)", d, loaded,
             model["model_name"], model["model_version"], secs, load_seconds, seal_seconds, run_id)
    return {"date": str(d), "run_id": str(run_id), "rows": loaded, "model": model["model_name"],
            "version": model["model_version"], "seconds": round(secs, 2), "delta_version": meta["version"]}


def _seal_side_by_side(settings: Settings, conn, expected: int, first: tuple, second: tuple) -> int:
    """Seal both loaded tables at once (``expected`` rows each; each of ``first`` and ``second`` is
    (table, rows loaded, source)): ``first`` on ``conn``, ``second`` on a connection of its own. Each primary key is one backend's sort; the load is over, so the two take
    a core each instead of one after the other. The first table's failure is the one reported."""
    import psycopg

    from churn.core.pg import CONNECT_ARGS, effective_url

    failed: list[BaseException] = []
    memory = f"SET maintenance_work_mem = '{settings.publish_sort_memory_mb}MB'"

    def seal_second() -> None:
        try:
            with psycopg.connect(effective_url(settings), autocommit=True, **CONNECT_ARGS) as other:
                as_publisher(other, settings)
                other.execute(memory)
                second[0].seal(other, second[1], expected, second[2])
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=seal_second, name="publish-seal", daemon=True)
    worker.start()
    try:
        conn.execute(memory)
        loaded = first[0].seal(conn, first[1], expected, first[2])
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return loaded


def in_short_lock_waits(conn, work, timeout_s: float, attempts: int, what: str) -> None:
    """``work(conn)`` in one transaction whose lock waits last at most ``timeout_s``; a lock not
    granted in time rolls the transaction back and it is tried again (``attempts`` in all, with
    growing pauses), so a long reader never queues every other reader of the table behind us."""
    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'")
                work()
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == attempts:
                raise InputError(f"{what}: the tables stayed locked by other sessions through {attempts} attempts of "
                                 f"{timeout_s:g}s each (a long query on churn.customer_scores?); nothing was published, "
                                 "the day's previous version stays") from None
            pause = min(30.0, 0.5 * 2 ** (attempt - 1))
            log.warning("%s: waited %gs for locks held by other sessions; trying again in %.1fs (%d/%d)", what,
                        timeout_s, pause, attempt, attempts)
            time.sleep(pause)


def _prune_online_features(conn, settings: Settings) -> None:
    """Only the newest ``online_features_keep`` nights of online features stay (the predictor reads the newest)."""
    nights = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'churn.online_features'::regclass ORDER BY c.relname DESC").fetchall()]
    for name in nights[settings.online_features_keep:]:
        def drop(name=name):
            conn.execute(f"ALTER TABLE churn.online_features DETACH PARTITION churn.{name}")
            conn.execute(f"DROP TABLE churn.{name}")

        in_short_lock_waits(conn, drop, settings.publish_lock_timeout_seconds, 3, f"pruning {name}")


def _literal(conn, value) -> str:
    from psycopg import sql

    return sql.Literal(None if value == "" else str(value)).as_string(conn)


def _clean_leftovers(conn, d: dt.date) -> None:
    """A publish of D killed earlier left staging tables and a 'running' row: clear both (we hold D's lock)."""
    for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'churn_staging' AND tablename LIKE %s",
                                (f"scores_{d:%Y%m%d}_%",)).fetchall():
        conn.execute(f"DROP TABLE IF EXISTS churn_staging.{name}")
    conn.execute("""UPDATE churn.scoring_runs SET status = 'failed', finished_at = now(),
                    error = 'the publishing process ended before finishing; nothing of it was published'
                    WHERE score_date = %s AND status = 'running'""", (d,))


def run_step(job: StepRun) -> dict:
    """The pipeline's ``publish`` step (churn/core/pipelines.yaml)."""
    return publish(job.settings, job.date)


def main(argv: list[str] | None = None) -> int:
    return step_main("publish", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
