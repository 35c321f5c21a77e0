"""A small generated lakehouse with closed label horizons, built once per test session for the
model-lifecycle tests (training reads its gold tables; MLflow stores live in each test's home)."""

import datetime as dt

import pytest

from spark_jobs.pipeline import STEPS, run_steps
from tests.conftest import generate_base

D0 = dt.date(2026, 1, 1)
DAYS = 70
HORIZON = 14
CUSTOMERS = 10000


@pytest.fixture(scope="session")
def ml_lake(spark, make_settings, tmp_path_factory):
    """gold/customer_features weekly over 10 weeks, labels with a 14-day horizon, and the oracle."""
    home = tmp_path_factory.mktemp("ml-lake")
    generate_base(home, CUSTOMERS, D0, DAYS, seed=5, horizon=HORIZON)
    settings = make_settings(home, label_horizon_days=HORIZON)
    run_steps(spark, settings, D0, D0 + dt.timedelta(days=DAYS - 1), list(STEPS), every=7)
    return home


@pytest.fixture
def ml_settings(ml_lake, make_settings, tmp_path):
    """Settings reading the shared lake (and its oracle) with this test's own MLflow store and reports."""

    def make(**overrides):
        oracle = tmp_path / "oracle"
        if not oracle.exists():
            oracle.symlink_to(ml_lake / "oracle")
        return make_settings(tmp_path, lake_uri=str(ml_lake / "lake"), label_horizon_days=HORIZON, **overrides)

    return make
