"""The pipeline declaration (churn/core/pipelines.yaml): well formed, consistent, and the one thing to
edit to add a step (the DAG side of that is tests/dags/test_dag_integrity.py)."""

import datetime as dt
import importlib
import logging
import sys

import pytest
import yaml

from churn.core.errors import ConfigError, InputError
from churn.core.pipeline import PIPELINES_FILE, StepRun, load_pipeline
from churn.core.settings import load_settings
from churn.runner import run_pipeline

NIGHTLY = load_pipeline("nightly")
EXTERNAL = ("raw:", "mlflow:")


def covers(written: str, read: str) -> bool:
    return written == read or (written.endswith("/*") and read.startswith(written[:-1]))


def test_every_read_is_an_external_input_or_written_by_an_earlier_step():
    written: list[str] = []
    for step in NIGHTLY.steps:
        for read in step.reads:
            assert read.startswith(EXTERNAL) or any(covers(w, read) for w in written), (step.name, read)
        written += step.writes
        for outlet in step.outlets:
            target = f"lake:{outlet['lake']}" if "lake" in outlet else f"postgres:{outlet['postgres']}"
            assert target in step.writes, (step.name, outlet)


def test_every_declared_step_is_a_command_with_a_run_step():
    for step in NIGHTLY.steps:
        module = importlib.import_module(step.module)
        assert callable(module.run_step) and callable(module.main), step.module
    assert [s.name for s in NIGHTLY.range_steps] == ["ingest", "validate", "silver", "features", "labels"]
    assert NIGHTLY.step("publish").argv("2026-01-31") == ["--date", "2026-01-31"]
    assert NIGHTLY.step("db_upgrade").argv("2026-01-31") == []


@pytest.mark.parametrize("change, message", [
    (lambda s: s[1].update(colour="red"), "unknown field(s) colour"),
    (lambda s: s[1].pop("module"), "missing field(s) module"),
    (lambda s: s[1].update(kind="lambda"), "kind 'lambda'"),
    (lambda s: s.append(dict(s[1])), "declares a step name twice"),
])
def test_a_malformed_declaration_is_refused_naming_the_field(tmp_path, change, message):
    data = yaml.safe_load(PIPELINES_FILE.read_text())
    change(data["pipelines"]["nightly"]["steps"])
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_pipeline("nightly", path)
    assert str(path) in str(err.value)


def test_adding_a_step_is_a_declaration_and_a_module(tmp_path, monkeypatch, caplog):
    """The in-process runner picks up a new step from the declaration alone, numbers the whole run,
    and hands the step its dates and settings; steps that need no Spark never start it."""
    (tmp_path / "extra_step.py").write_text(
        "calls = []\n"
        "def run_step(run):\n"
        "    calls.append((run.step, run.date, run.settings.home))\n"
        "    return {'ok': True}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = yaml.safe_load(PIPELINES_FILE.read_text())
    data["pipelines"]["nightly"]["steps"].append(
        {"name": "extra", "module": "extra_step", "kind": "process", "doc": "An added step."})
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(data))
    pipeline = load_pipeline("nightly", path)
    assert pipeline.names[-1] == "extra"
    settings = load_settings(env={"CHURN_HOME": str(tmp_path / "home")})
    with caplog.at_level(logging.INFO, logger="churn.runner"):
        result = run_pipeline(settings, dt.date(2026, 1, 31), steps=["extra"], pipeline=pipeline)
    assert result == {"extra": {"ok": True}}
    assert sys.modules["extra_step"].calls == [("extra", dt.date(2026, 1, 31), settings.home)]
    assert "[1/1] extra 2026-01-31" in caplog.text


def test_single_date_steps_refuse_a_range_before_anything_runs(tmp_path):
    settings = load_settings(env={"CHURN_HOME": str(tmp_path)})
    with pytest.raises(InputError, match="score, publish take one date"):
        run_pipeline(settings, dt.date(2026, 1, 1), dt.date(2026, 1, 7), steps=["ingest", "score", "publish"])
    with pytest.raises(InputError, match="unknown step"):
        run_pipeline(settings, dt.date(2026, 1, 1), steps=["ingest", "bogus"])
    run = StepRun(settings, dt.date(2026, 1, 1), dt.date(2026, 1, 3), step="score")
    with pytest.raises(InputError, match="score takes one date"):
        run.date
    with pytest.raises(ConfigError, match="needs Spark"):
        run.spark
    assert StepRun(settings, dt.date(2026, 1, 1), dt.date(2026, 1, 15), every=7).dates == \
        [dt.date(2026, 1, 1), dt.date(2026, 1, 8), dt.date(2026, 1, 15)]
