"""The online predictor: KServe ``Model`` ``churn`` serving the MLflow champion.

- At start it loads the ``champion`` alias; a background thread polls the alias and, when it
  moves, loads the new version completely before swapping one reference: a request sees the old
  model or the new one, never a half-loaded one. A registry that cannot be reached keeps the
  current model serving (and says so in the log).
- A request names customers, whose features are read from ``churn.online_features`` (the newest
  published night), or carries full feature vectors; ``overrides`` change some features of a
  customer for a what-if. Scoring is :func:`ml.scoring.score_frame`, the function the nightly
  batch runs: the same features and the same code give the same probability and reasons.
- v1: ``/v1/models/churn:predict`` and ``:explain``; v2 (Open Inference Protocol):
  ``/v2/models/churn/infer`` plus metadata and readiness, served by KServe's ModelServer.
"""

from __future__ import annotations

import datetime as dt
import json
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
from ml.scoring import score_frame
from ml.serving.contract import FeatureContract, Instance, InvalidRequest, UnknownCustomer, parse_v1, parse_v2

log = logging.getLogger("ml.serving")
MODEL_INFO = Gauge("churn_model_info", "The model version being served (value 1 on the served version's labels)",
                   ["model_name", "model_version", "model_run_id"])
LOOKUP_SECONDS = Histogram("churn_feature_lookup_seconds", "Online feature lookup latency (PostgreSQL), per request",
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
SCORED = Counter("churn_scored_total", "Rows scored online, by how their features were given", ["source"])
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
        contract = FeatureContract(model.prep, DEFINITIONS)
        score_frame(model, _example_row(model, contract), dt.date.today(), DESCRIPTIONS, self.settings.risk_band_list)  # proves it scores
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


class OnlineFeatures:
    """Feature vectors of the newest published night, by customer id, from ``churn.online_features``."""

    def __init__(self, settings: Settings):
        from churn.core.pg import effective_url

        self.url = effective_url(settings)
        self._conn = None
        self._lock = threading.Lock()
        self.night: dt.date | None = None
        self._night_checked = 0.0

    def _connection(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self._conn

    def newest_night(self, max_age: float = 5.0) -> dt.date | None:
        if time.monotonic() - self._night_checked > max_age:
            (night,) = self._connection().execute(
                "SELECT max(score_date) FROM churn.scoring_runs WHERE status = 'succeeded'").fetchone()
            self.night, self._night_checked = night, time.monotonic()
        return self.night

    def lookup(self, ids: list[str], names: list[str]) -> tuple[dict[str, tuple], dt.date | None]:
        """The feature values found (customer id -> values in ``names`` order) and their night.

        ``names`` come from the loaded model: only the platform's features (the columns of
        churn.online_features) may reach the SQL, and as quoted identifiers."""
        from psycopg import sql

        from churn.core.feature_defs import FEATURES

        unknown = sorted(set(names) - {f.name for f in FEATURES})
        if unknown:
            raise InvalidInput(f"customer_id: this model's feature(s) {', '.join(unknown[:5])} are not the platform's "
                               "online features (churn/core/feature_defs.py): send the features themselves")
        query = sql.SQL("SELECT customer_id, {} FROM churn.online_features "
                        "WHERE snapshot_date = %s AND customer_id = ANY(%s)").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names))
        with self._lock:
            try:
                night = self.newest_night()
                if night is None:
                    return {}, None
                cur = self._connection().execute(query, (night, ids), prepare=True)
                rows = cur.fetchall()
            except Exception:
                if self._conn is not None:
                    self._conn.close()
                raise
        return {r[0]: r[1:] for r in rows}, night

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


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
    def score(self, instances: list[Instance]) -> list[dict]:
        champion = self.watcher.current  # one model for the whole request
        names = champion.model.feature_names
        ids = sorted({i.customer_id for i in instances if i.customer_id is not None})
        if ids:
            with LOOKUP_SECONDS.time():
                stored, night = self.features.lookup(ids, names)
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
        frame = pd.DataFrame(cells, columns=["customer_id", *names])  # one block: no per-column cost
        scored = score_frame(champion.model, frame, night or dt.date.today(), DESCRIPTIONS, self.bands)
        SCORED.labels("lookup").inc(sum(i.customer_id is not None for i in instances))
        SCORED.labels("payload").inc(sum(i.customer_id is None for i in instances))
        out = []
        for inst, p, band, reasons in zip(instances, scored["churn_probability"].tolist(), scored["risk_band"].tolist(),
                                          scored["reasons"].tolist()):
            out.append({
                "customer_id": inst.customer_id,
                "churn_probability": p,
                "risk_band": band,
                "reasons": list(reasons),
                "model_name": self.name, "model_version": champion.version, "model_run_id": champion.run_id,
                "feature_snapshot_date": str(night) if inst.customer_id is not None and night else None,
                "overrides": sorted(inst.overrides) or None,
            })
        return out

    # -- v1 and v2 -----------------------------------------------------------------------------
    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            return self._infer_v2(payload)
        return {"predictions": self._v1(payload)}

    def explain(self, payload, headers=None):
        rows = self._v1(payload)
        return {"explanations": [{k: r[k] for k in ("customer_id", "churn_probability", "reasons", "model_version",
                                                      "feature_snapshot_date")} for r in rows]}

    def _v1(self, payload) -> list[dict]:
        try:
            champion = self.watcher.current
            return self.score(parse_v1(payload, champion.contract, self.max_batch))
        except UnknownCustomer as exc:
            raise CustomerNotFound(str(exc)) from None
        except InvalidRequest as exc:
            REFUSED.labels("invalid").inc()
            raise InvalidInput(str(exc)) from None

    def _infer_v2(self, request: InferRequest) -> InferResponse:
        try:
            champion = self.watcher.current
            tensors = [(t.name, t.datatype, list(t.shape), _tensor_data(t)) for t in request.inputs]
            rows = self.score(parse_v2(tensors, champion.contract, self.max_batch))
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
