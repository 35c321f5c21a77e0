"""The Helm chart, offline: helm lint, the values schema, and the rendered InferenceService checked
against its API (our JSON schema of the v1beta1 fields used; containers against the Kubernetes models)."""

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from tests.dags.test_kubernetes_profile import check_k8s_model

CHART = ROOT / "helm" / "churn-platform"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "inferenceservice-v1beta1.json").read_text())


def helm(*args: str) -> subprocess.CompletedProcess:
    binary = os.environ.get("CHURN_HELM") or str(Path.home() / ".cache/churn-platform/tools/helm-3.17.3/helm")
    if not Path(binary).exists():
        pytest.fail(f"helm not found at {binary}: run `make setup` (or set CHURN_HELM)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def render(*sets: str) -> list[dict]:
    out = helm("template", "churn", str(CHART), *[a for s in sets for a in ("--set", s)])
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_chart_lints_strictly():
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr


def test_inference_service_matches_the_kserve_and_kubernetes_apis():
    (isvc,) = render()
    jsonschema.validate(isvc, SCHEMA)
    (container,) = isvc["spec"]["predictor"]["containers"]
    check_k8s_model(container, "V1Container")
    assert container["args"][:1] == ["serve"] and container["command"] == ["churn"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/churn/ready"
    assert container["envFrom"] == [{"secretRef": {"name": "churn-platform-settings"}}]
    assert not any("PASSWORD" in e["name"] or "SECRET" in e["name"] for e in container.get("env", []))


def test_values_are_checked_before_anything_renders():
    for bad, message in [("predictor.minReplicas=-1", "minReplicas: Must be greater than or equal to 0"),
                         ("predictor.resources.limits.memory=lots", "limits.memory: Does not match pattern"),
                         ("predictor.modelName=Churn_Model", "modelName: Does not match pattern"),
                         ("surprise=1", "Additional property surprise is not allowed"),
                         ("predictor.minReplicas=5", "minReplicas (5) must not exceed predictor.maxReplicas (4)")]:
        out = helm("template", "churn", str(CHART), "--set", bad)
        assert out.returncode != 0 and message in out.stderr, (bad, out.stderr)


def test_the_predictor_can_be_left_out():
    assert render("predictor.enabled=false") == []


def test_the_chart_defaults_to_the_image_the_platform_declares():
    """One default image for every environment: the chart's values agree with churn/core/pipelines.yaml,
    which the DAGs, the Kubeflow components and the settings read."""
    from churn.core.pipeline import platform_defaults

    values = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert f"{values['repository']}:{values['tag']}" == platform_defaults()["image"]
    assert chart["appVersion"] == values["tag"]
