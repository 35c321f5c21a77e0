"""Model-lifecycle tests read the session's generated lakehouse (``ml_lake``, tests/conftest.py);
their MLflow stores live in each test's home."""

import pytest

from tests.conftest import ML_HORIZON as HORIZON


@pytest.fixture
def ml_settings(ml_lake, make_settings, tmp_path):
    """Settings reading the shared lake (and its oracle) with this test's own MLflow store and reports."""

    def make(**overrides):
        oracle = tmp_path / "oracle"
        if not oracle.exists():
            oracle.symlink_to(ml_lake / "oracle")
        return make_settings(tmp_path, lake_uri=str(ml_lake / "lake"), label_horizon_days=HORIZON, **overrides)

    return make
