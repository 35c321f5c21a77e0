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
    (["run", "--date", "2026-01-01", "--steps", "ingest,scoring"], "unknown step(s) scoring"),
    (["run", "--start", "2026-01-01", "--end", "2026-01-03", "--steps", "ingest,score"], "score take one date"),
    (["serve", "--config", "/nonexistent.yaml"], "settings file /nonexistent.yaml does not exist"),
    (["spark-gateway", "--config", "/nonexistent.yaml", "-v"], "settings file /nonexistent.yaml does not exist"),
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


def test_every_declared_step_is_a_command_with_help_and_an_example():
    from churn.core.pipeline import load_pipeline

    for step in load_pipeline("nightly").steps:
        r = subprocess.run([sys.executable, "-m", step.module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, (step.module, r.stderr[-2000:])
        assert ("--date" in r.stdout) == step.dated and f"example: python -m {step.module}" in r.stdout, step.module


def test_every_command_has_help_an_example_and_the_common_options():
    from churn.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert {"generate", "run", "nightly", "train", "serve", "spark-gateway", "db", "publish"} <= set(sub.choices)
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "example:\n  churn " in text or "example:\n  CHURN_" in text, name
        assert "--config" in text and "--verbose" in text, name
        for action in p._actions:
            assert action.help, f"churn {name} {action.option_strings or action.dest} has no help text"
    r = churn("--version")
    assert r.returncode == 0 and r.stdout.startswith("churn-platform ")
    r = churn("settings", "-v")  # -v after the subcommand as well as before it
    assert r.returncode == 0, r.stderr
