"""Session fixtures: the services the tests need and one SparkSession for the whole run.

Nothing runs when a test session starts: a throwaway PostgreSQL and a moto S3 server are started
here on free loopback ports and stopped at the end (so `make test` and a plain `pytest` behave
the same). Spark is configured once with the S3 endpoint, so local and s3a:// lakes share it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from churn.services import Postgres, S3Server, free_port
from churn.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TELCO = SHARED / "data" / "telco_customer_churn.csv"
BUCKET = "churn-lake"


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
        }
        if "CHURN_JARS_DIR" in os.environ:
            env["CHURN_JARS_DIR"] = os.environ["CHURN_JARS_DIR"]
        env.update({f"CHURN_{k.upper()}": str(v) for k, v in overrides.items()})
        return load_settings(env=env)

    return make


@pytest.fixture(scope="session")
def spark(make_settings, tmp_path_factory):
    from churn.spark import get_spark

    session = get_spark(make_settings(tmp_path_factory.mktemp("spark-home")), "churn-tests")
    yield session
    session.stop()


def generate_base(out_home: Path, customers: int, start: dt.date, days: int, seed: int = 7, **kw):
    """Generate raw drops under <home>/raw (and the oracle under <home>/oracle)."""
    from churn.generate import GeneratorConfig, generate

    cfg = GeneratorConfig(customers=customers, start=start, days=days, seed=seed, out=str(out_home / "raw"),
                          oracle_dir=str(out_home / "oracle"), **kw)
    return generate(cfg)


# A generated lakehouse with closed label horizons (10k customers, weekly snapshots over 10 weeks,
# 14-day labels, the oracle), built once per session: training, scoring and publishing read it.
ML_D0 = dt.date(2026, 1, 1)
ML_DAYS = 70
ML_HORIZON = 14
ML_CUSTOMERS = 10000


@pytest.fixture(scope="session")
def ml_lake(spark, make_settings, tmp_path_factory):
    """gold/customer_features weekly over 10 weeks, labels with a 14-day horizon, and the oracle."""
    home = tmp_path_factory.mktemp("ml-lake")
    generate_base(home, ML_CUSTOMERS, ML_D0, ML_DAYS, seed=5, horizon=ML_HORIZON)
    settings = make_settings(home, label_horizon_days=ML_HORIZON)
    from spark_jobs.pipeline import STEPS, run_steps

    run_steps(spark, settings, ML_D0, ML_D0 + dt.timedelta(days=ML_DAYS - 1), list(STEPS), every=7)
    return home


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
