"""Session fixtures: the services the tests need and one SparkSession for the whole run.

Nothing runs when a test session starts: a throwaway PostgreSQL and a moto S3 server are started
here on free loopback ports and stopped at the end (so `make test` and a plain `pytest` behave
the same). Spark is configured once with the S3 endpoint, so local and s3a:// lakes share it.
"""

from __future__ import annotations

import os
import subprocess

# XGBoost's OpenMP threads spin while they wait (libgomp's default). In this process they share two
# cores with the threads of the in-process S3 server and of py4j, and a Telco fit took 54 s instead
# of 8.5 s once the session's Spark was up. Passive waiting is read once, when libgomp loads, so it
# is set here, before anything imports xgboost or scikit-learn.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datetime as dt  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from churn.core.net import free_port
from churn.core.settings import Settings, load_settings
from churn.warehouse.server import Postgres
from tests.support.servers import S3Server

ROOT = Path(__file__).resolve().parent.parent
TELCO = ROOT / "local" / "data" / "telco_customer_churn.csv"  # shipped in the repo (local/data/README.md)
BUCKET = "churn-lake"
#: Fixtures that start the JVM: a test using any of them is `slow` (`make test-fast` leaves it out).
JVM_FIXTURES = {"spark", "lakehouse", "ml_lake", "champion"}


def pytest_collection_modifyitems(items):
    for item in items:
        if JVM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def s3():
    server = S3Server(free_port()).start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    pg = Postgres(tmp_path_factory.mktemp("pg") / "data", free_port()).start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def make_settings(s3):
    """Settings for a test: its own CHURN_HOME, the session's S3 endpoint, overrides as keywords."""

    def make(home: Path, **overrides) -> Settings:
        env = {
            "CHURN_HOME": str(home),
            "CHURN_S3_ENDPOINT": s3.endpoint,
            "CHURN_S3_ACCESS_KEY": s3.access_key,
            "CHURN_S3_SECRET_KEY": s3.secret_key,
            "CHURN_SPARK_MASTER": "local[2]",
            "CHURN_SPARK_SHUFFLE_PARTITIONS": "4",
            # a test's days are a few hundred to a few thousand rows: compiling each query costs more
            # than it saves (measured: a quarter of a small night's Spark time)
            "CHURN_SPARK_CODEGEN": "false",
            # GX's data docs (an HTML site rebuilt after every validation, ~2 s): only the session's
            # lakehouse builds them, which tests/spark_jobs/test_lakehouse.py opens
            "CHURN_VALIDATION_DATA_DOCS": "false",
            # the training DAG tunes (`churn pipeline run-local --tune`): a few trials show the step
            # runs end to end; how well the search does is benchmarks/model_quality.py's question
            "CHURN_TUNE_TRIALS": "4",
        }
        if "CHURN_JARS_DIR" in os.environ:
            env["CHURN_JARS_DIR"] = os.environ["CHURN_JARS_DIR"]
        env.update({f"CHURN_{k.upper()}": str(v) for k, v in overrides.items()})
        return load_settings(env=env)

    return make


@pytest.fixture(scope="session")
def spark(make_settings, tmp_path_factory):
    from spark_jobs.session import get_spark

    session = get_spark(make_settings(tmp_path_factory.mktemp("spark-home")), "churn-tests")
    yield session
    session.stop()


def generate_base(out_home: Path, customers: int, start: dt.date, days: int, seed: int = 7, **kw):
    """Generate raw drops under <home>/raw (and the oracle under <home>/oracle)."""
    from churn.simulator import GeneratorConfig, generate

    cfg = GeneratorConfig(customers=customers, start=start, days=days, seed=seed, out=str(out_home / "raw"),
                          oracle_dir=str(out_home / "oracle"), **kw)
    return generate(cfg)


# THE generated lakehouse of a test session, built once with the range path and the session's Spark:
# 10k customers x 70 days, 14-day labels and the oracle, with every kind of export defect at 0.5 %
# as corrupted extra copies of true rows (defect_mode="add") and real late rows. It is built as two
# arriving batches of nights (days 0-34, then 35-69, weekly snapshots), so the lakehouse tests see
# late rows land on dates already built and every defect quarantined; the ML, scoring, publishing
# and serving tests train and score on the same tables. Corrupting true rows instead would lose
# learnable signal: the model's share of the oracle AUC then moved between 0.963 and 0.970 with
# the defect rate (0.977 on a clean base, asserted >= 0.97); with added copies it is 0.974.
# The generator's drift knob is on: a price rise (+10 % on every active customer's monthly charges,
# and a churn hazard shock) on day 64, after the last labelled snapshot the champion trains on and
# after the weekly snapshot of day 63, so the snapshot of day 69 is the one drifted night
# (tests/ml/test_monitor.py); the generator's days before it are unchanged by the knob.
ML_D0 = dt.date(2026, 1, 1)
ML_DAYS = 70
ML_DRIFT_DATE = ML_D0 + dt.timedelta(days=64)
ML_HORIZON = 14
ML_CUSTOMERS = 10000
LAKE_PHASE_A_END = ML_D0 + dt.timedelta(days=34)
LAKE_DEFECT_RATE = 0.005


@dataclass
class SharedLake:
    home: Path
    settings: Settings
    manifest: object  # the generator's counts of what it exported
    after_phase_a: dict  # what the tables held before the second batch of nights arrived


@pytest.fixture(scope="session")
def lakehouse(spark, make_settings, tmp_path_factory) -> SharedLake:
    from churn.core.lake import delta_table
    from churn.core.sources import DEFECT_KINDS
    from churn.runner import build_lakehouse

    home = tmp_path_factory.mktemp("lakehouse")
    manifest = generate_base(home, ML_CUSTOMERS, ML_D0, ML_DAYS, seed=5, horizon=ML_HORIZON, defects=DEFECT_KINDS,
                             defect_rate=LAKE_DEFECT_RATE, defect_mode="add", drift="price_rise",
                             drift_date=ML_DRIFT_DATE)
    settings = make_settings(home, label_horizon_days=ML_HORIZON, validation_data_docs=True)
    build_lakehouse(settings, ML_D0, LAKE_PHASE_A_END, spark=spark, every=7)
    snap = ML_D0 + dt.timedelta(days=14)
    after_a = {
        "snapshot": snap,
        "features": delta_table(settings, "gold", "customer_features").to_pandas(filters=[("snapshot_date", "=", snap)]),
    }
    build_lakehouse(settings, LAKE_PHASE_A_END + dt.timedelta(days=1), ML_D0 + dt.timedelta(days=ML_DAYS - 1),
                    spark=spark, every=7)
    return SharedLake(home, settings, manifest, after_a)


@pytest.fixture(scope="session")
def ml_lake(lakehouse) -> Path:
    """The home of the session's lakehouse (its lake, raw drops and oracle): what ML tests read."""
    return lakehouse.home


@pytest.fixture(scope="session")
def champion(ml_lake, make_settings, tmp_path_factory):
    """A home whose MLflow store has a champion trained on the shared lake (scores go to that lake)."""
    from ml import train

    home = tmp_path_factory.mktemp("champion")
    s = make_settings(home, lake_uri=str(ml_lake / "lake"), label_horizon_days=ML_HORIZON)
    result = train.run(s)
    assert result["decision"] == "promoted"
    return s, result


@pytest.fixture
def pg_url(postgres):
    """A fresh database on the session's PostgreSQL for one test: its URL (superuser, trust auth)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# One Airflow metadata database for the session (the DAG tests and the chart's worker pods), prepared
# once by the platform's own `local/airflow.sh init`: migrated, with the lake writers' one-slot pool.
# The end-to-end run, the kubernetes-profile checks and generate-dag-yaml use it side by side.
@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")})
    proc = subprocess.run(["bash", str(ROOT / "local" / "airflow.sh"), "init"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home
