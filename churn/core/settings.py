"""One settings object for every command: where things live and how to reach them.

Values come from, in increasing priority: built-in defaults, an optional YAML file
(``CHURN_CONFIG`` or ``--config``), and ``CHURN_*`` environment variables. The defaults are the
embedded local profile (folders under ``CHURN_HOME``, SQLite for MLflow, Spark ``local[*]``); a
cluster sets URIs for MinIO (``s3a://``), PostgreSQL and an MLflow server instead. Nothing else in
the code base reads the environment for these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from churn.core.errors import ConfigError
from churn.core.pipeline import platform_defaults

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = _PROJECT_ROOT / "spark_jobs" / "jars" / "pom.xml"
#: Metrics the promotion gate can compare on, and whether higher ("max") or lower ("min") is better.
GATE_METRICS = {"roc_auc": "max", "pr_auc": "max", "log_loss": "min", "brier": "min"}


def _default_jars_dir() -> str:
    """Jar cache keyed on the pom's content, so a version bump resolves afresh."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()[:12] if POM_PATH.exists() else "nopom"
    return str(cache / "churn-platform" / f"jars-{digest}")


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its state. Every field maps to ``CHURN_<FIELD>`` (upper case)."""

    #: Where the embedded profile keeps everything (default from churn/core/pipelines.yaml: .churn).
    home: str = ""
    #: Lakehouse root: a folder, ``file:///...`` or ``s3a://bucket/prefix``.
    lake_uri: str = ""
    #: Raw landing zone the operational exports are dropped into (one folder per source and date).
    raw_uri: str = ""
    #: Validation results (JSON), data docs (HTML), evaluation reports.
    reports_dir: str = ""
    #: S3-compatible endpoint (MinIO in a cluster, a moto server in tests); empty means AWS itself.
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    #: MinIO and moto need path-style addressing (http://host/bucket/key).
    s3_path_style: bool = True
    #: PostgreSQL for published scores (SQLAlchemy/libpq URL). Empty: a local server under home.
    pg_url: str = ""
    #: MLflow tracking URI. Empty: SQLite + local artifacts under home.
    mlflow_uri: str = ""
    #: Spark master: local[*] in the embedded profile. A job started by spark-submit (the
    #: spark-operator in the kubernetes profile) keeps the master its launcher chose.
    spark_master: str = "local[*]"
    spark_driver_memory: str = "4g"
    #: Memory of each executor on a cluster (standalone or Kubernetes; local[*] runs its tasks in the
    #: driver). Empty: Spark's default (1g), or what the launcher set.
    spark_executor_memory: str = ""
    spark_shuffle_partitions: int = 8
    #: How many of a step's per-source tables it writes at once (ingest's replaceWhere, silver's
    #: MERGE: one Spark job chain per table, in threads of one session). A small night is mostly fixed
    #: per-commit cost, which overlaps; 1 writes them one after the other (lowest peak memory).
    spark_table_writers: int = 3
    #: Spark compiles every query's expressions and stages to JVM bytecode (Janino) before running
    #: them: worth it over millions of rows, pure overhead over a night of a few hundred (the test
    #: suite, a demo). false runs them interpreted: a small day's ingest+silver+features took 18 s
    #: instead of 25 s on 2 cores (CPU-bound either way); results are the same.
    spark_codegen: bool = True
    #: Local profile only: the file of a warm Spark JVM started by ``churn spark-gateway``. Steps
    #: attach to it (one at a time) instead of starting their own JVM; empty: every step starts its own.
    spark_gateway: str = ""
    #: Resolved JVM jars (Delta, hadoop-aws + AWS SDK, PostgreSQL JDBC); see spark_jobs/jars/pom.xml.
    jars_dir: str = ""
    #: Churn label horizon: a snapshot's label is "cancelled within this many days after it".
    label_horizon_days: int = 30
    #: A row rule's failure rate stops the run only on batches at least this large; smaller batches
    #: (a day's few cancellations) are quarantined row by row and warned about, since a rate over a
    #: dozen rows is noise.
    validation_min_rows: int = 200
    #: A source's batch of at most this many rows is validated by GX's pandas engine on the driver
    #: (same suites, same verdicts, no Spark job per metric); a larger one by GX's Spark engine.
    #: 0: always Spark.
    validation_pandas_max_rows: int = 500_000
    #: Rebuild Great Expectations' data docs (the HTML site under ``<reports>/validation/data_docs``)
    #: after each validation. false skips them (the JSON results are still written): about 2 s a
    #: night that a test suite, which never opens them, saves.
    validation_data_docs: bool = True
    #: The nightly waits for a date's drops (their completion markers) until this many hours after
    #: the day ends (UTC); then it fails, naming the missing drops (churn/landing.py).
    drops_deadline_hours: float = 6.0
    #: Volume check: a source's drop with fewer rows than this share of the median of its previous
    #: 7 days (at least 3 of them ingested) fails validation as a partial export; sources whose
    #: median is under ``volume_min_rows`` rows a day are too small to judge.
    volume_min_ratio: float = 0.5
    volume_min_rows: int = 100
    #: Registered model name in MLflow; its aliases ``champion`` and ``challenger`` drive scoring.
    model_name: str = "churn"
    #: Artifact root of new MLflow experiments. Empty: ``<home>/mlflow/artifacts`` with the local
    #: SQLite store, the tracking server's own default with ``mlflow_uri`` (e.g. s3://bucket/mlflow).
    mlflow_artifacts_uri: str = ""
    #: Promotion gate: a challenger replaces the champion only if, on the same evaluation rows, it
    #: beats it on ``gate_metric`` by ``gate_margin`` and passes the absolute floors below.
    gate_metric: str = "roc_auc"
    gate_margin: float = 0.002
    gate_min_roc_auc: float = 0.70
    gate_max_calibration_error: float = 0.05
    #: Hyper-parameter search before training (``churn train --tune``, a spec's ``tune:`` section, the
    #: Kubeflow pipeline's tune step; ml/tune.py): at most ``tune_trials`` trials and ``tune_seconds``
    #: of search, on a sample of about ``tune_sample_rows`` training rows (whole customers), scored by
    #: ``tune_folds``-fold CV (a spec's snapshot) or the validation slice (the lakehouse), fanned out
    #: over ``tune_workers`` shards in a cluster.
    tune_trials: int = 40
    tune_seconds: float = 480.0
    tune_sample_rows: int = 200_000
    tune_folds: int = 3
    tune_workers: int = 1
    #: Segment gate: a challenger whose ROC-AUC on any segment holding at least
    #: ``gate_segment_min_share`` of the evaluation rows falls more than ``gate_segment_margin`` below
    #: the champion's on the same rows is refused, naming the segment.
    gate_segment_margin: float = 0.02
    gate_segment_min_share: float = 0.05
    #: Risk band thresholds on the churn probability: below the first "low", from the second "high".
    risk_bands: str = "0.10,0.30"
    #: Parallel COPY connections of a publish (each PostgreSQL backend parses its share of the rows).
    publish_connections: int = 2
    #: Memory (MB) of each primary-key build of a publish (``maintenance_work_mem`` of its session; the
    #: two tables' keys are built side by side). 10M customers sort in memory in about 1 GB: a key
    #: built at 1 GB took 4.4 s where 256 MB spilled to disk and took 7.9 s.
    publish_sort_memory_mb: int = 1024
    #: The PostgreSQL role a publish works as (``SET ROLE`` on each of its connections): it owns the
    #: tables whose day partitions it swaps and nothing else (migration 0004). The login role of
    #: ``pg_url`` must be a member (``GRANT churn_publisher TO <login>``). ``none``: the login role itself.
    pg_publish_role: str = "churn_publisher"
    #: Publishing's swap waits at most this long for its locks, then rolls back and tries again
    #: (``publish_lock_attempts`` in all, pauses growing from 0.5 s), so a long CRM query delays the
    #: swap instead of queueing every other reader behind it.
    publish_lock_timeout_seconds: float = 2.0
    publish_lock_attempts: int = 8
    #: Nights of online features kept in PostgreSQL (the predictor reads the newest; older ones are dropped).
    online_features_keep: int = 3
    #: Online predictor: most instances (v1) or rows (v2) one request may carry.
    serve_max_batch: int = 100
    #: Online predictor: the largest request body it reads (a larger one gets 413 before parsing).
    serve_max_body_bytes: int = 1 << 20
    #: Online predictor: the longest a request waits for its feature lookup (pool, connect and query
    #: together); past it, or with PostgreSQL down, it gets 503 with Retry-After instead of hanging.
    serve_lookup_timeout_seconds: float = 1.0
    #: Online predictor: PostgreSQL connections its lookups share.
    serve_pg_pool_size: int = 4
    #: Online predictor: keep the newest published night's feature vectors in memory when the night
    #: has at most this many customers (about 0.5 KB each: 500k ~ 250 MB per worker); a lookup of a
    #: cached customer then never waits on PostgreSQL. 0: always look up in PostgreSQL.
    serve_cache_customers: int = 500_000
    #: Container image of the platform (Spark jobs, training components, predictor); the default is
    #: the one churn/core/pipelines.yaml names for both environments.
    platform_image: str = ""
    #: Kubeflow Pipelines API endpoint the training hand-off submits to (e.g. http://ml-pipeline:8888).
    kfp_host: str = ""
    #: One writer per lake (churn/core/lock.py): how long a lake-writing command waits for the lake's
    #: lock before it refuses, naming the holder (0: refuse at once).
    lake_lock_wait_seconds: float = 0.0
    #: S3 lakes: how often the lock's holder renews it, and after how long without a renewal the lock
    #: is stale (its holder died) and the next writer takes it over.
    lake_lock_heartbeat_seconds: float = 10.0
    lake_lock_stale_seconds: float = 120.0
    #: Drift (ml/monitor.py): rows of a night's features compared with the champion's reference (a
    #: seeded sample; the reference, stored with the model at training, has at most as many rows).
    #: benchmarks/drift.py measures how often the sample's verdicts agree with all rows'.
    drift_sample_rows: int = 20_000
    #: A night whose drifted features carry at least this share of the model's importance (total
    #: gain) requests a retrain. On the test lakehouse (tests/ml/test_monitor.py): 3.5 % on a quiet
    #: night (only 90-day windows still filling up drift), 20.7 % five days after a 10 % price rise.
    drift_retrain_share: float = 0.10
    #: A scored night whose label horizon has closed with a realized ROC-AUC under this floor
    #: requests a retrain.
    realized_min_roc_auc: float = 0.70
    #: At most one retrain request per this many days (drift or performance alike).
    retrain_cooldown_days: int = 7
    #: Prometheus Pushgateway every batch step pushes its metrics to (e.g. http://pushgateway:9091);
    #: empty: no metrics pushed.
    pushgateway_url: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    # ---- derived locations -------------------------------------------------------------
    def table_uri(self, layer: str, name: str) -> str:
        """URI of a Delta table, e.g. ``table_uri("gold", "customer_features")``."""
        return f"{self.lake_uri.rstrip('/')}/{layer}/{name}"

    @property
    def is_s3(self) -> bool:
        return self.lake_uri.startswith(("s3a://", "s3://"))

    @property
    def mlflow_tracking_uri(self) -> str:
        """``mlflow_uri``, or the embedded SQLite store under home."""
        return self.mlflow_uri or f"sqlite:///{Path(self.home) / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where new experiments keep artifacts (None: let the tracking server decide)."""
        if self.mlflow_artifacts_uri:
            return self.mlflow_artifacts_uri
        if self.mlflow_uri.startswith("sqlite:///"):  # a store file of its own: artifacts beside it, as the
            # embedded layout keeps them (MLflow's default would be ./mlruns under whatever folder runs it)
            return (Path(self.mlflow_uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
        return None if self.mlflow_uri else (Path(self.home) / "mlflow" / "artifacts").as_uri()

    def s3_storage_options(self) -> dict[str, str]:
        """S3 settings as delta-rs / object_store options (empty when S3 is not configured)."""
        opts = {"AWS_REGION": self.s3_region}
        if self.s3_endpoint:
            opts["AWS_ENDPOINT_URL"] = self.s3_endpoint
            opts["AWS_ALLOW_HTTP"] = "true" if self.s3_endpoint.startswith("http://") else "false"
        if self.s3_access_key:
            opts["AWS_ACCESS_KEY_ID"] = self.s3_access_key
            opts["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_key
        if self.s3_path_style:
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        return opts

    @property
    def risk_band_list(self) -> list[float]:
        return [float(x) for x in self.risk_bands.split(",")]

    @property
    def oracle_dir(self) -> str:
        """Generator side table of true churn probabilities; the platform's jobs never read it."""
        return str(Path(self.home) / "oracle")

    def as_env(self) -> dict[str, str]:
        """The settings as ``CHURN_*`` variables (unredacted, empty ones left out): what a child
        process of the platform needs to see the same settings."""
        return {f"CHURN_{k.upper()}": str(v) for k, v in self.as_dict(redact=False).items()
                if k != "extra" and v not in ("", None)}

    def as_dict(self, redact: bool = True) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if redact:
            for k in SECRET_SETTINGS:
                if out.get(k):
                    out[k] = "***"
            for k in URI_SETTINGS:
                if out.get(k):
                    out[k] = redact_url(out[k])
        return out

    def __repr__(self) -> str:  # a Settings in a log line or a traceback shows no secret
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.as_dict(redact=True).items())})"


#: Query parameters and libpq keywords whose values are credentials.
_SECRET_KEYS = r"password|passwd|pwd|secret|secret_key|secretkey|token|access_token|api_key|apikey|sslpassword|sig"
_SECRET_PARAM = re.compile(rf"(?i)([?&;](?:{_SECRET_KEYS})=)([^&;#\s]*)")
_SECRET_KEYWORD = re.compile(rf"(?i)((?:^|\s)(?:{_SECRET_KEYS})\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@:]*):([^/?#@]*)@")


def redact_url(url: str) -> str:
    """Credentials out of a connection string, whatever its form: ``scheme://user:<secret>@host/db``
    -> ``scheme://user:***@host/db``; ``...?password=secret`` and libpq's keyword form
    ``host=db password=secret`` -> ``password=***``. Unchanged without credentials."""
    if not url:
        return url
    out = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", url)
    out = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}***", out)
    if "://" not in out:
        out = _SECRET_KEYWORD.sub(lambda m: f"{m.group(1)}***", out)
    return out


#: Settings that hold a URI or a DSN (credentials may ride in them) and settings that are secrets.
URI_SETTINGS = ("pg_url", "mlflow_uri", "mlflow_artifacts_uri", "kfp_host", "s3_endpoint", "lake_uri", "raw_uri",
                "reports_dir", "pushgateway_url")
SECRET_SETTINGS = ("s3_secret_key",)


def secret_values(s: "Settings") -> list[str]:
    """Every secret the settings carry (keys, and the passwords inside URIs): what logs, errors and
    tables must never show. Longest first, so that a secret containing another is replaced whole."""
    found = {getattr(s, k) for k in SECRET_SETTINGS if getattr(s, k)}
    for k in URI_SETTINGS:
        value = getattr(s, k) or ""
        m = _USERINFO.match(value)
        if m and m.group(3):
            found.add(m.group(3))
        found.update(v for _, v in _SECRET_PARAM.findall(value) if v)
        if "://" not in value:
            found.update(v.strip("'") for _, v in _SECRET_KEYWORD.findall(value) if v.strip("'"))
    return sorted((v for v in found if len(v) >= 3), key=len, reverse=True)


def redact_text(text: str, s: "Settings | None" = None) -> str:
    """``text`` with every secret of ``s`` and every credential-looking part of a URI replaced by ***."""
    for value in secret_values(s) if s is not None else ():
        text = text.replace(value, "***")
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}***", re.sub(
        r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*):([^/?#@\s]*)@", r"\1:***@", text))


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}


def _coerce(name: str, value: Any, source: str) -> Any:
    f = _FIELDS[name]
    target = f.type if isinstance(f.type, type) else {"str": str, "int": int, "float": float, "bool": bool}[f.type]
    if target is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{source}: expected true/false for {name}, got {value!r}")
    try:
        return target(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected {target.__name__} for {name}, got {value!r}") from None


def load_settings(config_file: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, an optional YAML file and ``CHURN_*`` variables."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get("CHURN_CONFIG") or None
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"settings file {path} does not exist (from CHURN_CONFIG or --config)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"settings file {path}: expected a mapping of setting names to values")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"settings file {path}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_FIELDS))}"
            )
        for k, v in data.items():
            values[k] = _coerce(k, v, f"settings file {path}")
    for name in _FIELDS:
        var = f"CHURN_{name.upper()}"
        if env.get(var, "") != "":
            values[name] = _coerce(name, env[var], f"environment variable {var}")

    defaults = platform_defaults()
    home = Path(values.get("home", defaults["home"])).expanduser()
    home = home if home.is_absolute() else (Path.cwd() / home)
    values["home"] = str(home)
    values.setdefault("lake_uri", defaults["lake"].format(home=home))
    values.setdefault("platform_image", defaults["image"])
    values.setdefault("raw_uri", str(home / "raw"))
    values.setdefault("reports_dir", str(home / "reports"))
    values.setdefault("jars_dir", _default_jars_dir())
    s = Settings(**values)
    _validate(s)
    return s


#: Settings with an inclusive range of valid values.
_RANGES = {"serve_lookup_timeout_seconds": (0.05, 60), "serve_pg_pool_size": (1, 64), "serve_max_batch": (1, 10_000),
           "serve_cache_customers": (0, 100_000_000), "publish_connections": (1, 16), "spark_table_writers": (1, 16),
           "publish_sort_memory_mb": (64, 65_536)}


def _validate(s: Settings) -> None:
    for name, (low, high) in _RANGES.items():
        if not low <= getattr(s, name) <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {getattr(s, name)}")
    if s.label_horizon_days < 1:
        raise ConfigError(f"label_horizon_days must be >= 1, got {s.label_horizon_days}")
    if s.validation_pandas_max_rows < 0:
        raise ConfigError(f"validation_pandas_max_rows must be >= 0, got {s.validation_pandas_max_rows}")
    if not 0 <= s.volume_min_ratio < 1:
        raise ConfigError(f"volume_min_ratio must be in [0, 1), got {s.volume_min_ratio}")
    if s.validation_min_rows < 0:
        raise ConfigError(f"validation_min_rows must be >= 0, got {s.validation_min_rows}")
    if s.serve_max_body_bytes < 1024:
        raise ConfigError(f"serve_max_body_bytes must be at least 1024, got {s.serve_max_body_bytes}")
    if s.publish_lock_timeout_seconds <= 0 or s.publish_lock_attempts < 1:
        raise ConfigError("publish_lock_timeout_seconds must be > 0 and publish_lock_attempts >= 1, got "
                          f"{s.publish_lock_timeout_seconds} and {s.publish_lock_attempts}")
    if s.online_features_keep < 1:
        raise ConfigError(f"online_features_keep must be >= 1, got {s.online_features_keep}")
    if s.lake_lock_wait_seconds < 0:
        raise ConfigError(f"lake_lock_wait_seconds must be >= 0, got {s.lake_lock_wait_seconds}")
    if not 0 < s.lake_lock_heartbeat_seconds * 2 < s.lake_lock_stale_seconds:
        raise ConfigError(f"lake_lock_stale_seconds ({s.lake_lock_stale_seconds}) must be more than twice "
                          f"lake_lock_heartbeat_seconds ({s.lake_lock_heartbeat_seconds}), which must be > 0")
    if s.gate_metric not in GATE_METRICS:
        raise ConfigError(f"gate_metric={s.gate_metric!r}: expected one of {', '.join(sorted(GATE_METRICS))}")
    if s.gate_margin < 0:
        raise ConfigError(f"gate_margin must be >= 0, got {s.gate_margin}")
    if not 0.5 <= s.gate_min_roc_auc <= 1:
        raise ConfigError(f"gate_min_roc_auc must be between 0.5 and 1, got {s.gate_min_roc_auc}")
    if not 0 < s.gate_max_calibration_error <= 1:
        raise ConfigError(f"gate_max_calibration_error must be in (0, 1], got {s.gate_max_calibration_error}")
    try:
        bands = s.risk_band_list
    except ValueError:
        bands = []
    if len(bands) != 2 or not 0 < bands[0] < bands[1] < 1:
        raise ConfigError(f"risk_bands={s.risk_bands!r}: expected two increasing probabilities, e.g. 0.10,0.30")
    for name, ok, want in (("tune_trials", s.tune_trials >= 0, ">= 0"), ("tune_seconds", s.tune_seconds > 0, "> 0"),
                           ("tune_sample_rows", s.tune_sample_rows >= 1000, ">= 1000"),
                           ("tune_folds", 2 <= s.tune_folds <= 10, "between 2 and 10"),
                           ("tune_workers", 1 <= s.tune_workers <= 64, "between 1 and 64")):
        if not ok:
            raise ConfigError(f"{name} must be {want}, got {getattr(s, name)!r}")
    if not 0 <= s.gate_segment_margin <= 1:
        raise ConfigError(f"gate_segment_margin must be between 0 and 1, got {s.gate_segment_margin}")
    if not 0 < s.gate_segment_min_share <= 1:
        raise ConfigError(f"gate_segment_min_share must be in (0, 1], got {s.gate_segment_min_share}")
    if s.drift_sample_rows < 1000:
        raise ConfigError(f"drift_sample_rows must be at least 1000, got {s.drift_sample_rows}")
    if not 0 < s.drift_retrain_share <= 1:
        raise ConfigError(f"drift_retrain_share must be in (0, 1], got {s.drift_retrain_share}")
    if not 0.5 <= s.realized_min_roc_auc <= 1:
        raise ConfigError(f"realized_min_roc_auc must be between 0.5 and 1, got {s.realized_min_roc_auc}")
    if s.retrain_cooldown_days < 0:
        raise ConfigError(f"retrain_cooldown_days must be >= 0, got {s.retrain_cooldown_days}")
    if s.pushgateway_url and not s.pushgateway_url.startswith(("http://", "https://")):
        raise ConfigError(f"pushgateway_url={s.pushgateway_url!r}: expected an http:// or https:// URL")
    for name in ("lake_uri", "raw_uri", "reports_dir"):
        uri = getattr(s, name)
        if "://" in uri and not uri.startswith(("s3a://", "s3://", "file://")):
            raise ConfigError(f"{name}={uri!r}: expected a local path, file://, s3a:// or s3:// URI")
    if s.is_s3 and not (s.s3_access_key and s.s3_secret_key) and s.s3_endpoint:
        raise ConfigError(
            f"lake_uri={s.lake_uri} uses S3 endpoint {s.s3_endpoint} but CHURN_S3_ACCESS_KEY / "
            "CHURN_S3_SECRET_KEY are not set"
        )
