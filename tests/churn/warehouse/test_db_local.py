"""The embedded profile's own PostgreSQL (`churn db start|status|stop`), used when CHURN_PG_URL is unset."""

import json
import os
import subprocess
import sys

import psycopg

from tests.conftest import ROOT


def churn(*args, home, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    return subprocess.run([sys.executable, "-m", "churn", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**base, "CHURN_HOME": str(home), **env}, timeout=120)


def test_start_upgrade_publish_target_and_stop_without_a_url(tmp_path):
    home = tmp_path / "home"
    missing = churn("db", "upgrade", home=home)
    assert missing.returncode != 0 and "CHURN_PG_URL is not set" in missing.stderr and "churn db start" in missing.stderr
    assert churn("db", "status", home=home).returncode == 3  # not running
    started = churn("db", "start", home=home)
    try:
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout)
        assert info["url"].endswith("/churn") and "churn db stop" in info["stop"]
        again = churn("db", "start", home=home)  # idempotent: finds it running
        assert again.returncode == 0 and json.loads(again.stdout)["url"] == info["url"]
        upgraded = churn("db", "upgrade", home=home)  # no CHURN_PG_URL: the server under CHURN_HOME
        assert upgraded.returncode == 0, upgraded.stderr
        with psycopg.connect(info["url"]) as conn:
            assert conn.execute("SELECT count(*) FROM churn.schema_migrations").fetchone()[0] >= 1
        assert churn("db", "status", home=home).returncode == 0
    finally:
        stopped = churn("db", "stop", home=home)
    assert stopped.returncode == 0 and churn("db", "status", home=home).returncode == 3


def test_it_refuses_to_manage_a_server_named_by_url(tmp_path):
    r = churn("db", "start", home=tmp_path, CHURN_PG_URL="postgresql://crm@db.internal:5432/churn")
    assert r.returncode != 0 and "CHURN_PG_URL is set" in r.stderr
