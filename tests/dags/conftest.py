"""One Airflow metadata database for the DAG tests of a session (`airflow db migrate` once, not per
module): the end-to-end run and the kubernetes-profile checks use different DAG ids, so they share it."""

import os
import subprocess

import pytest

from tests.conftest import ROOT

AIRFLOW = ROOT / ".venv" / "airflow" / "bin"


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")})
    proc = subprocess.run([str(AIRFLOW / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home
