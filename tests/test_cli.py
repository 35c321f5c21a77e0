"""The command-line contract: subcommands exist, bad arguments exit non-zero with a reason."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def churn(*args, env=None):
    return subprocess.run([sys.executable, "-m", "churn", *args], capture_output=True, text=True, cwd=ROOT, env=env)


@pytest.mark.parametrize("args, message", [
    (["run", "--date", "2026-13-01"], "expected a date as YYYY-MM-DD"),
    (["run", "--date", "2999-01-01"], "in the future"),
    (["run", "--start", "2026-02-01", "--end", "2026-01-01"], "before --start"),
    (["run", "--date", "2026-01-01", "--steps", "ingest,score"], "unknown step"),
    (["run"], "give --date"),
    (["generate", "--customers", "0", "--start", "2026-01-01", "--days", "2"], "--customers"),
])
def test_bad_arguments_exit_non_zero_with_a_reason(args, message, tmp_path):
    import os

    r = churn(*args, env={**os.environ, "CHURN_HOME": str(tmp_path)})
    assert r.returncode != 0
    assert message in r.stderr


def test_generate_then_settings(tmp_path):
    import json
    import os

    env = {**os.environ, "CHURN_HOME": str(tmp_path)}
    r = churn("generate", "--customers", "50", "--start", "2026-01-01", "--days", "3", "--defects", "all", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"]["customers"] >= 50 and (tmp_path / "raw" / "usage").is_dir()
    r = churn("settings", env=env)
    assert json.loads(r.stdout)["lake_uri"] == str(tmp_path / "lake")


@pytest.mark.parametrize("module", ["ingest", "validate", "silver", "build_features", "labels"])
def test_every_step_is_a_command(module):
    r = subprocess.run([sys.executable, "-m", f"spark_jobs.{module}", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--date" in r.stdout
