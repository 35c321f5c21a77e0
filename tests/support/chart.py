"""The platform's Helm chart, rendered offline with the real helm binary (`make setup` fetches it)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "helm" / "churn-platform"
ENVIRONMENTS = ("dev", "staging", "prod")


def helm(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    binary = os.environ.get("CHURN_HELM") or str(Path.home() / ".cache/churn-platform/tools/helm-3.17.3/helm")
    if not Path(binary).exists():
        pytest.fail(f"helm not found at {binary}: run `make setup` (or set CHURN_HELM)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)


@cache
def _render(environment: str | None, sets: tuple[str, ...]) -> str:
    args = ["template", "churn", str(CHART), "--namespace", "churn"]
    if environment:
        args += ["-f", str(CHART / f"values-{environment}.yaml")]
    out = helm(*args, *[a for s in sets for a in ("--set", s)])
    assert out.returncode == 0, out.stderr
    return out.stdout


def render(*sets: str, environment: str | None = None) -> list[dict]:
    """Every document `helm template` renders (cached per arguments: the tests only read them)."""
    return [d for d in yaml.safe_load_all(_render(environment, sets)) if d]


def airflow_templates(folder: Path, *sets: str) -> Path:
    """Write the ConfigMap the chart gives the DAGs' kubernetes profile into ``folder`` (what a cluster
    mounts at CHURN_K8S_TEMPLATES): profile.yaml, spark-application.yaml, step-pod.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (cm,) = [d for d in render(*sets) if d["kind"] == "ConfigMap"
             and d["metadata"]["name"] == values["airflow"]["templatesConfigMap"]]
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in cm["data"].items():
        (folder / name).write_text(text)
    return folder
