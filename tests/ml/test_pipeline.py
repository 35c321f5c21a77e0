"""The Kubeflow training pipeline: compiled YAML, a local end-to-end run, and the hand-off to a KFP API."""

import json

import pytest
import yaml

from churn.cli import main
from ml.pipelines.submit import KfpUnavailable, submit_and_wait
from ml.pipelines.training import compile_pipeline, run_local
from tests.ml.kfp_stub import KfpStub

IMAGE = "registry.example/churn-platform:1.2.3"
STEPS = ["prepare-data", "tune-plan", "for-loop-1", "tune-pick", "train-model", "evaluate-model", "gate-and-register"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = compile_pipeline(tmp_path_factory.mktemp("kfp") / "pipeline.yaml", IMAGE)
    return yaml.safe_load(path.read_text())


def test_compiled_pipeline_wires_the_steps_on_the_platform_image(compiled):
    assert compiled["pipelineInfo"]["name"] == "churn-training"
    tasks = compiled["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    # tuning fans out: one tune-shard per worker in a ParallelFor over the plan, collected by the pick
    loop = tasks["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("tune-plan-Output")
    assert list(compiled["components"]["comp-for-loop-1"]["dag"]["tasks"]) == ["tune-shard"]
    assert sorted(tasks["tune-pick"]["dependentTasks"]) == ["for-loop-1", "prepare-data"]
    assert tasks["tune-pick"]["inputs"]["parameters"]["shards"]["taskOutputParameter"]["producerTask"] == "for-loop-1"
    assert sorted(tasks["train-model"]["dependentTasks"]) == ["prepare-data", "tune-pick"]
    assert sorted(tasks["gate-and-register"]["dependentTasks"]) == ["evaluate-model", "prepare-data", "train-model"]
    for t in [*tasks.values(), *compiled["components"]["comp-for-loop-1"]["dag"]["tasks"].values()]:
        if "componentRef" in t and t["componentRef"]["name"] != "comp-for-loop-1":
            assert t["cachingOptions"] == {} or t["cachingOptions"].get("enableCache") is False
    executors = compiled["deploymentSpec"]["executors"]
    for ex in executors.values():
        c = ex["container"]
        assert c["image"] == IMAGE
        assert "pip install" not in " ".join(c["command"])  # the image carries the platform and kfp
        assert any("from ml.train import" in part for part in c["command"])
    params = compiled["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"start", "end", "spec", "seed", "params", "tune"}
    assert executors["exec-train-model"]["container"]["resources"]["memoryLimit"] == 16.0


def test_compile_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("CHURN_PLATFORM_IMAGE", IMAGE)
    assert main(["pipeline", "compile", "--out", str(tmp_path / "p.yaml")]) == 0
    assert IMAGE in (tmp_path / "p.yaml").read_text()


@pytest.mark.slow
def test_pipeline_runs_locally_end_to_end_with_its_tune_step(ml_settings, monkeypatch):
    s = ml_settings()
    env = {"CHURN_HOME": s.home, "CHURN_LAKE_URI": s.lake_uri, "CHURN_LABEL_HORIZON_DAYS": "14",
           "CHURN_TUNE_TRIALS": "4", "CHURN_TUNE_WORKERS": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # components are subprocesses: settings travel as CHURN_* variables
    out = run_local({"start": "", "end": "", "spec": "", "seed": 42, "tune": True}, s)
    assert out["decision"] == "promoted" and out["champion"] == out["version"] == "1"
    from ml.registry import Registry

    client = Registry(s).client
    run = client.get_run(out["run_id"])
    assert run.data.metrics["auc_share_of_oracle"] >= 0.97
    assert run.data.tags["gate.outcome"] == "promoted"
    # the search: a parent run with one child run per trial, two shards of two; the model records it
    parent = client.get_run(run.data.tags["tune.run_id"])
    assert parent.data.tags["churn.kind"] == "tune" and parent.data.params["tune.workers"] == "2"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == ["trial 0.0", "trial 0.1", "trial 1.0", "trial 1.1"]
    assert run.data.params["tune.trials"] == "4"
    chosen = json.loads(parent.data.tags["tune.chosen"])
    assert str(chosen["max_depth"]) == run.data.params["max_depth"]


def test_submit_creates_a_run_with_the_compiled_spec_and_waits_for_success():
    with KfpStub("SUCCEEDED", polls_until_done=3) as kfp:
        out = submit_and_wait(kfp.url, {"start": "2026-01-01", "end": "2026-03-01", "spec": "", "seed": 7}, IMAGE,
                              timeout=30, poll=0.05)
    assert out["state"] == "SUCCEEDED"
    posted = [b for m, p, b in kfp.requests if m == "POST" and p.startswith("/apis/v2beta1/runs")]
    assert len(posted) == 1
    run = posted[0]
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "churn-training"
    assert run["runtime_config"]["parameters"] == {"start": "2026-01-01", "end": "2026-03-01", "spec": "", "seed": 7}
    assert run["experiment_id"] in kfp.experiments
    exp = kfp.experiments[run["experiment_id"]]
    assert exp["display_name"] == "churn-training"


def test_submit_reports_failure_and_the_command_exits_non_zero(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    with KfpStub("FAILED", polls_until_done=2) as kfp:
        code = main(["pipeline", "submit", "--host", kfp.url, "--timeout", "30", "--poll", "0.05"])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "FAILED" and "train-model failed" in out["error"]


def test_submit_terminates_a_run_that_outlives_the_timeout():
    with KfpStub(polls_until_done=None) as kfp:
        out = submit_and_wait(kfp.url, {"seed": 1}, IMAGE, timeout=0.3, poll=0.05)
    assert out["state"] == "TIMED_OUT" and out["last_state"] == "RUNNING"
    assert any(p.endswith(":terminate") for m, p, _ in kfp.requests if m == "POST")
    assert kfp.runs[out["run_id"]]["state"] == "CANCELED"


def test_unreachable_kfp_endpoint_is_a_clear_error():
    with pytest.raises(KfpUnavailable, match="127.0.0.1:9 is unreachable"):
        submit_and_wait("http://127.0.0.1:9", {}, IMAGE, timeout=5)
