"""One Airflow metadata database for the DAG tests of a session, prepared once (not per module) by
the platform's own `local/airflow.sh init`: migrated, with the lake writers' one-slot pool. The
end-to-end run and the kubernetes-profile checks use different DAG ids, so they share it."""

import os
import subprocess

import pytest

from tests.conftest import ROOT



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
