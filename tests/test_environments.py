"""The two Python environments `make setup` builds from requirements/*.lock, and their split."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

AIRFLOW_PY = ROOT / ".venv" / "airflow" / "bin" / "python"


def pins(lock: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", lock.read_text(), re.M))


def test_platform_environment_matches_its_lock():
    from importlib.metadata import version

    locked = pins(ROOT / "requirements" / "platform.lock")
    for name in ("pyspark", "delta-spark", "great-expectations", "mlflow", "kserve", "kfp", "pandas"):
        assert version(name) == locked[name], name
    assert "apache-airflow" not in locked


@pytest.mark.skipif(not AIRFLOW_PY.exists(), reason="created by `make setup`")
def test_airflow_environment_is_separate_and_locked():
    locked = pins(ROOT / "requirements" / "airflow.lock")
    code = ("import importlib.util as u, importlib.metadata as m; "
            "print(m.version('apache-airflow'), u.find_spec('pyspark') is None, u.find_spec('churn') is None)")
    out = subprocess.run([str(AIRFLOW_PY), "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    airflow_version, no_spark, no_churn = out.stdout.split()
    assert airflow_version == locked["apache-airflow"] == "3.3.2"
    assert no_spark == "True" and no_churn == "True"  # DAGs cannot import job code there
    assert sys.executable != str(AIRFLOW_PY)
