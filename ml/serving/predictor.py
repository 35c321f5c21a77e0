"""The online predictor: KServe ``Model`` ``churn`` serving the MLflow champion.

- At start it loads the ``champion`` alias; a background thread polls the alias and, when it
  moves, loads the new version completely before swapping one reference: a request sees the old
  model or the new one, never a half-loaded one. A registry that cannot be reached keeps the
  current model serving (and says so in the log).
- A request names customers, whose features are read from ``churn.online_features`` (the newest
  published night), or carries full feature vectors; ``overrides`` change some features of a
  customer for a what-if. Scoring is :func:`ml.scoring.scored`, the computation the nightly
  batch runs (``score_records`` lays it out as dicts, the batch's ``score_table`` as Arrow): the
  same features and the same code give the same probability and reasons.
- v1: ``/v1/models/churn:predict`` and ``:explain``; v2 (Open Inference Protocol):
  ``/v2/models/churn/infer`` plus metadata and readiness, served by KServe's ModelServer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from kserve import Model
from prometheus_client import Counter, Gauge, Histogram
from kserve.errors import InvalidInput, ModelNotFound
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from churn.core.feature_defs import FEATURES
from churn.core.settings import Settings
from ml.model import ChurnModel
from ml.scoring import score_records
from ml.serving.contract import FeatureContract, Instance, InvalidRequest, UnknownCustomer, parse_v1, parse_v2

log = logging.getLogger("ml.serving")
MODEL_INFO = Gauge("churn_model_info", "The model version being served (value 1 on the served version's labels)",
                   ["model_name", "model_version", "model_run_id"])
LOOKUP_SECONDS = Histogram("churn_feature_lookup_seconds", "Online feature lookup latency (the in-memory night or PostgreSQL), per request",
                           buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
SCORED = Counter("churn_scored_total", "Rows scored online, by how their features were given", ["source"])
CACHED = Gauge("churn_feature_cache_customers", "Customers of the newest night held in the predictor's memory")
CACHE_HITS = Counter("churn_feature_cache_hits_total", "Requests whose customers' features came from the in-memory night")
STORE_UP = Gauge("churn_feature_store_up", "1 while the online features (PostgreSQL) answer lookups, 0 while not")
UNAVAILABLE = Counter("churn_requests_unavailable_total", "Requests answered 503 because the online features could not be read")
REFUSED = Counter("churn_requests_refused_total", "Requests refused with a 4xx, by reason", ["reason"])
DESCRIPTIONS = {f.name: f.description for f in FEATURES}
DEFINITIONS = {f.name: f for f in FEATURES}


class CustomerNotFound(ModelNotFound):
    """KServe answers its ModelNotFound with a 404 carrying the message: an unknown customer is one."""

    def __init__(self, message: str):
        super().__init__()
        self.reason = message


@dataclass(frozen=True)
class Champion:
    model: ChurnModel
    version: str
    run_id: str
    contract: FeatureContract
    loaded_at: float


class ChampionWatcher:
    """The champion, reloaded when the MLflow alias moves (loaded fully, then swapped in one step)."""

    def __init__(self, settings: Settings, poll_seconds: float):
        from ml.registry import Registry

        self.settings = settings
        self.name = settings.model_name
        self.poll_seconds = poll_seconds
        self.registry = Registry(settings)
        self._current: Champion | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Champion:
        champion = self._current
        if champion is None:
            raise InvalidInput(f"model {self.name} has no champion loaded yet")
        return champion

    def refresh(self) -> bool:
        """Load the champion if the alias points elsewhere than the served version; True if swapped."""
        from ml.registry import CHAMPION

        version = self.registry.alias_version(self.name, CHAMPION)
        if version is None:
            if self._current is None:
                self.registry.champion_version(self.name)  # raises NoChampion, naming the store and what to do
            return False  # the alias was removed: keep serving what we have
        if self._current is not None and self._current.version == version:
            return False
        mv = self.registry.client.get_model_version(self.name, version)
        model = self.registry.load(self.name, version)
        # a request is a few rows: XGBoost's OpenMP threads only wait on each other (and, on a busy
        # node, for a core) around it; the server's concurrency is across requests
        model.booster.set_param({"nthread": 1})
        contract = FeatureContract(model.prep, DEFINITIONS)
        score_records(model, _example_row(model, contract), DESCRIPTIONS, self.settings.risk_band_list)  # proves it scores
        previous = self._current
        self._current = Champion(model, version, mv.run_id or "", contract, time.time())
        if previous is not None:
            MODEL_INFO.labels(self.name, previous.version, previous.run_id).set(0)
        MODEL_INFO.labels(self.name, version, mv.run_id or "").set(1)
        previous = previous.version if previous else None
        log.info("serving %s version %s (was %s)", self.name, version, previous or "none")
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving the loaded model
                log.warning("champion check failed, still serving version %s: %s",
                            self._current.version if self._current else "none", exc)


def _example_row(model: ChurnModel, contract: FeatureContract) -> pd.DataFrame:
    """A row of nulls with the model's columns (a smoke test of a freshly loaded model)."""
    return pd.DataFrame({"customer_id": ["_check"], **{n: [None] for n in model.feature_names}})


class FeatureStoreUnavailable(Exception):
    """The online features cannot be read now (PostgreSQL down, slow or locked): 503 with Retry-After."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NightCache:
    """One published night's feature vectors in memory: numbers as float64 columns (NaN: missing),
    text as object columns (None: missing), and the row of each customer id. Immutable once built;
    the store swaps in a new one when a newer night is published."""

    def __init__(self, night: dt.date, table):
        self.night = night
        ids = table.column("customer_id").to_pylist()
        self.index = dict(zip(ids, range(len(ids))))
        self.columns = {}
        for name in table.column_names[1:]:
            col = table.column(name)
            self.columns[name] = col.to_numpy(zero_copy_only=False) if col.type == "double" else \
                np.array(col.to_pylist(), dtype=object)

    def __len__(self) -> int:
        return len(self.index)

    def get(self, ids: list[str], names: list[str]) -> dict[str, tuple] | None:
        """The vectors of ``ids`` in ``names`` order, or None when one of them is not cached."""
        try:
            rows = [self.index[i] for i in ids]
            cols = [self.columns[n] for n in names]
        except KeyError:
            return None
        return {i: tuple(c[r] for c in cols) for i, r in zip(ids, rows)}


class OnlineFeatures:
    """Feature vectors of the newest published night, by customer id, from ``churn.online_features``.

    Lookups share a small connection pool (psycopg_pool) and are bounded end to end: a connection
    waits at most ``serve_lookup_timeout_seconds`` for the pool, each statement and lock wait has
    the same server-side timeout, and :meth:`lookup_within` gives the caller its answer or
    :class:`FeatureStoreUnavailable` within that time, whatever PostgreSQL does (a frozen server
    included). The store knows whether it is up (:attr:`available`): a failed lookup marks it down,
    a background probe marks it up again when PostgreSQL answers, so readiness follows the database
    and the server recovers by itself.

    With ``serve_cache_customers`` > 0, a background thread keeps the newest published night in
    memory (:class:`NightCache`, loaded with one ``COPY`` when the night has at most that many
    customers, replaced within ``night_seconds`` of a newer night's publish): a lookup of a cached
    customer answers without leaving the process, so it neither waits on PostgreSQL nor fails with
    it. Customers not in the cache (unknown ones, or every one when the night is too large) are
    looked up in PostgreSQL as above."""

    def __init__(self, settings: Settings, probe_seconds: float = 1.0, night_seconds: float = 5.0):
        from concurrent.futures import ThreadPoolExecutor

        from psycopg_pool import ConnectionPool

        from churn.core.pg import CONNECT_ARGS, effective_url

        self.url = effective_url(settings)
        self.timeout = settings.serve_lookup_timeout_seconds
        self.retry_after = max(1, math.ceil(self.timeout))
        ms = max(1, int(self.timeout * 1000))
        kwargs = {**CONNECT_ARGS, "autocommit": True, "connect_timeout": max(2, math.ceil(self.timeout)),
                  "application_name": "churn-serve",
                  "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"}
        self.pool = ConnectionPool(self.url, kwargs=kwargs, min_size=1, max_size=settings.serve_pg_pool_size,
                                   timeout=self.timeout, reconnect_timeout=self.timeout, check=ConnectionPool.check_connection,
                                   name="online-features", open=False)
        self.pool.open(wait=False)
        # lookups run here, never on the server's event loop; a lookup stuck on a frozen server
        # holds one of these threads until the server answers or its connection dies
        self._executor = ThreadPoolExecutor(max_workers=settings.serve_pg_pool_size + 2,
                                            thread_name_prefix="feature-lookup")
        self.night: dt.date | None = None
        self._night_checked = 0.0
        self.problem: str | None = None  # why the store is down, or None when it is up
        self._probe_seconds = probe_seconds
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._prober = threading.Thread(target=self._probe, name="feature-store-probe", daemon=True)
        self._prober.start()
        self.cache: NightCache | None = None
        self.cache_limit = settings.serve_cache_customers
        self._night_seconds = night_seconds
        if self.cache_limit:
            self._cacher = threading.Thread(target=self._keep_cache, name="feature-cache", daemon=True)
            self._cacher.start()
        STORE_UP.set(1)
        try:  # start knowing whether the store answers (bounded: the pool's timeout)
            with self.pool.connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - serve requests that carry their features meanwhile
            self._down(_why(exc))

    @property
    def available(self) -> bool:
        return self.problem is None

    def _down(self, why: str) -> FeatureStoreUnavailable:
        if self.problem is None:
            log.warning("online features unavailable: %s", why)
        self.problem = why
        STORE_UP.set(0)
        self._wake.set()
        return FeatureStoreUnavailable(
            f"customer_id: the online features cannot be read now ({why}); retry in {self.retry_after} s, "
            "or send the features themselves", self.retry_after)

    def _up(self) -> None:
        if self.problem is not None:
            log.info("online features available again (was: %s)", self.problem)
        self.problem = None
        STORE_UP.set(1)

    def _probe(self) -> None:
        """While the store is down, ask PostgreSQL once per probe interval whether it answers."""
        while not self._closed.is_set():
            self._wake.wait()
            while self.problem is not None and not self._closed.wait(self._probe_seconds):
                try:
                    with self.pool.connection(timeout=self.timeout) as conn:
                        conn.execute("SELECT 1 FROM churn.online_features LIMIT 0")
                    self._up()
                except Exception as exc:  # noqa: BLE001 - still down; say why on the next lookup
                    self.problem = _why(exc)
            self._wake.clear()

    def _newest_night(self, conn, max_age: float = 5.0) -> dt.date | None:
        if time.monotonic() - self._night_checked > max_age:
            (night,) = conn.execute(
                "SELECT max(score_date) FROM churn.scoring_runs WHERE status = 'succeeded'").fetchone()
            self.night, self._night_checked = night, time.monotonic()
        return self.night

    def _keep_cache(self) -> None:
        """Every ``night_seconds``: is there a newer published night? Load it when it fits."""
        skipped = failed = None
        while not self._closed.is_set():
            try:
                with self.pool.connection(timeout=self.timeout) as conn:
                    night = self._newest_night(conn, max_age=0)
                    current = self.cache.night if self.cache else None
                    if night is not None and night != current and night != skipped:
                        (n,) = conn.execute("SELECT count(*) FROM churn.online_features WHERE snapshot_date = %s",
                                            (night,)).fetchone()
                        if n > self.cache_limit:
                            log.info("online features of %s: %d customers, more than CHURN_SERVE_CACHE_CUSTOMERS=%d: "
                                     "looked up in PostgreSQL", night, n, self.cache_limit)
                            skipped, self.cache = night, None
                            CACHED.set(0)
                        else:
                            t0 = time.monotonic()
                            self.cache = NightCache(night, self._read_night(conn, night))
                            CACHED.set(len(self.cache))
                            log.info("online features of %s cached: %d customers in %.1f s", night, len(self.cache),
                                     time.monotonic() - t0)
            except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: try again later
                why = _why(exc)
                if not self._closed.is_set() and why != failed:  # once per distinct problem
                    log.warning("online features not cached (lookups go to PostgreSQL): %s", why)
                failed = why
            else:
                failed = None
            self._closed.wait(self._night_seconds)

    @staticmethod
    def _read_night(conn, night: dt.date):
        """The night's rows as an Arrow table (one COPY, CSV parsed by Arrow): the platform's features."""
        import io

        import pyarrow as pa
        import pyarrow.csv as pcsv
        from psycopg import sql

        have = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_schema = 'churn' AND table_name = 'online_features'")}
        names = [f.name for f in FEATURES if f.name in have]
        query = sql.SQL("COPY (SELECT customer_id, {} FROM churn.online_features WHERE snapshot_date = {}) "
                        "TO STDOUT (FORMAT csv)").format(sql.SQL(", ").join(sql.Identifier(n) for n in names),
                                                         sql.Literal(night))
        buf = io.BytesIO()
        with conn.cursor().copy(query) as cp:
            for chunk in cp:
                buf.write(chunk)
        types = {"customer_id": pa.string(), **{f.name: pa.string() if f.kind == "categorical" else pa.float64()
                                                for f in FEATURES if f.name in have}}
        buf.seek(0)
        if not buf.getbuffer().nbytes:
            return pa.schema(types).empty_table()
        return pcsv.read_csv(buf, read_options=pcsv.ReadOptions(column_names=["customer_id", *names]),
                             convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                 quoted_strings_can_be_null=False))

    def lookup(self, ids: list[str], names: list[str]) -> tuple[dict[str, tuple], dt.date | None]:
        """The feature values found (customer id -> values in ``names`` order) and their night.

        ``names`` come from the loaded model: only the platform's features (the columns of
        churn.online_features) may reach the SQL, and as quoted identifiers. Blocking: a server
        uses :meth:`lookup_within`."""
        import psycopg
        from psycopg import sql
        from psycopg_pool import PoolTimeout

        unknown = sorted(set(names) - {f.name for f in FEATURES})
        if unknown:
            raise InvalidInput(f"customer_id: this model's feature(s) {', '.join(unknown[:5])} are not the platform's "
                               "online features (churn/core/feature_defs.py): send the features themselves")
        query = sql.SQL("SELECT customer_id, {} FROM churn.online_features "
                        "WHERE snapshot_date = %s AND customer_id = ANY(%s)").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names))
        try:
            with self.pool.connection() as conn:
                night = self._newest_night(conn)
                rows = [] if night is None else conn.execute(query, (night, ids), prepare=True).fetchall()
        except psycopg.errors.UndefinedTable:
            self._up()
            return {}, None  # nothing was ever published here
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._down(_why(exc)) from None
        self._up()
        return {r[0]: r[1:] for r in rows}, night

    async def lookup_within(self, ids: list[str], names: list[str]) -> tuple[dict[str, tuple], dt.date | None]:
        """The cached night's vectors when every id is cached; else :meth:`lookup` off the event loop,
        answered within the lookup timeout whatever happens."""
        cache = self.cache
        if cache is not None:
            found = cache.get(ids, names)
            if found is not None:
                CACHE_HITS.inc()
                return found, cache.night
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.lookup, ids, names)
        try:
            return await asyncio.wait_for(future, self.timeout + 0.1)
        except (asyncio.TimeoutError, RuntimeError) as exc:  # RuntimeError: the executor is shut down
            raise self._down(f"no answer within {self.timeout:g} s" if isinstance(exc, asyncio.TimeoutError)
                             else "the server is stopping") from None

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.pool.close(timeout=1)


def _why(exc: BaseException) -> str:
    """A short reason for the log and the 503: the error class and its first line, no connection string."""
    from churn.core.settings import redact_url

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {redact_url(text)}"[:300] if text else type(exc).__name__


class ChurnPredictor(Model):
    """KServe model ``churn``: probability, risk band and top-3 reasons per customer or feature vector."""

    def __init__(self, settings: Settings, poll_seconds: float = 30.0):
        super().__init__(settings.model_name)
        self.settings = settings
        self.max_batch = settings.serve_max_batch
        self.watcher = ChampionWatcher(settings, poll_seconds)
        self.features: OnlineFeatures | None = None
        self.bands = settings.risk_band_list

    def load(self) -> bool:
        self.watcher.refresh()
        self.features = OnlineFeatures(self.settings)
        self.watcher.start()
        self.ready = True
        return self.ready

    def stop(self):
        self.watcher.stop()
        if self.features is not None:
            self.features.close()

    # -- the shared path: instances -> scored rows ---------------------------------------------
    async def score(self, instances: list[Instance], champion: Champion) -> list[dict]:
        """Score with ``champion``, the one model the request was parsed with (a swap mid-request
        changes nothing for it)."""
        names = champion.model.feature_names
        ids = sorted({i.customer_id for i in instances if i.customer_id is not None})
        if ids:
            with LOOKUP_SECONDS.time():
                try:
                    stored, night = await self.features.lookup_within(ids, names)
                except FeatureStoreUnavailable:
                    UNAVAILABLE.inc()
                    raise
        else:
            stored, night = {}, None
        missing = [c for c in ids if c not in stored]
        if missing:
            REFUSED.labels("unknown_customer").inc()
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            where = f"on the newest published night ({night})" if night else "(nothing is published yet)"
            raise CustomerNotFound(f"customer_id: unknown customer(s) {shown}: no online features {where}")
        numeric = [champion.contract.kinds[n] != "categorical" for n in names]
        cells = np.empty((len(instances), len(names) + 1), dtype=object)
        for i, inst in enumerate(instances):
            values = dict(zip(names, stored[inst.customer_id])) if inst.customer_id is not None else dict(inst.features)
            values.update(inst.overrides)
            # text, or floats with NaN for missing: the values the batch job reads from Delta
            cells[i, 0] = inst.customer_id or f"request-{i}"
            cells[i, 1:] = [(np.nan if v is None else float(v)) if num else v
                            for num, v in zip(numeric, (values.get(n) for n in names))]
        frame = pd.DataFrame(cells, columns=["customer_id", *names], dtype=object)  # one block, no type inference
        scored = score_records(champion.model, frame, DESCRIPTIONS, self.bands)
        SCORED.labels("lookup").inc(sum(i.customer_id is not None for i in instances))
        SCORED.labels("payload").inc(sum(i.customer_id is None for i in instances))
        out = []
        for inst, row in zip(instances, scored):
            out.append({
                "customer_id": inst.customer_id,
                "churn_probability": row["churn_probability"],
                "risk_band": row["risk_band"],
                "reasons": row["reasons"],
                "model_name": self.name, "model_version": champion.version, "model_run_id": champion.run_id,
                "feature_snapshot_date": str(night) if inst.customer_id is not None and night else None,
                "overrides": sorted(inst.overrides) or None,
            })
        return out

    # -- v1 and v2 (coroutines: a lookup waits off the event loop, so health and metrics stay fast)
    async def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            return await self._infer_v2(payload)
        return {"predictions": await self._v1(payload)}

    async def explain(self, payload, headers=None):
        rows = await self._v1(payload)
        return {"explanations": [{k: r[k] for k in ("customer_id", "churn_probability", "reasons", "model_version",
                                                      "feature_snapshot_date")} for r in rows]}

    async def _v1(self, payload) -> list[dict]:
        try:
            champion = self.watcher.current
            return await self.score(parse_v1(payload, champion.contract, self.max_batch), champion)
        except UnknownCustomer as exc:
            raise CustomerNotFound(str(exc)) from None
        except InvalidRequest as exc:
            REFUSED.labels("invalid").inc()
            raise InvalidInput(str(exc)) from None

    async def _infer_v2(self, request: InferRequest) -> InferResponse:
        try:
            champion = self.watcher.current
            tensors = [(t.name, t.datatype, list(t.shape), _tensor_data(t)) for t in request.inputs]
            rows = await self.score(parse_v2(tensors, champion.contract, self.max_batch), champion)
        except InvalidRequest as exc:
            REFUSED.labels("invalid").inc()
            raise InvalidInput(str(exc)) from None
        n = len(rows)
        outputs = [
            _output("churn_probability", "FP64", np.array([r["churn_probability"] for r in rows], dtype="float64")),
            _output("risk_band", "BYTES", np.array([r["risk_band"] for r in rows], dtype=object)),
            _output("reasons", "BYTES", np.array([json.dumps(r["reasons"]) for r in rows], dtype=object)),
            _output("feature_snapshot_date", "BYTES",
                    np.array([r["feature_snapshot_date"] or "" for r in rows], dtype=object)),
        ]
        assert all(o.shape == [n] for o in outputs)
        return InferResponse(response_id=request.id or f"churn-{time.time_ns()}", model_name=self.name,
                             model_version=champion.version, infer_outputs=outputs)

    def get_input_types(self) -> list[dict]:
        return [{"name": "customer_id", "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
                {"name": "risk_band", "datatype": "BYTES", "shape": [-1]},
                {"name": "reasons", "datatype": "BYTES", "shape": [-1]},
                {"name": "feature_snapshot_date", "datatype": "BYTES", "shape": [-1]}]


def _output(name: str, datatype: str, data: np.ndarray) -> InferOutput:
    out = InferOutput(name=name, shape=list(data.shape), datatype=datatype)
    out.set_data_from_numpy(data, binary_data=False)
    return out


def _tensor_data(tensor) -> list:
    data = tensor.data
    if isinstance(data, np.ndarray):
        return data.tolist()
    return list(data) if data is not None else []
