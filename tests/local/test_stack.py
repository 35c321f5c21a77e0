"""The one-workstation stack and the kind install, offline: Debian's docker-compose validates the
compose file with the example settings, every service is there, on loopback, pinned, and takes its
secrets from the .env file; the kind files parse and the install script is valid bash."""

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

LOCAL = ROOT / "local"
SERVICES = {"postgres", "minio", "minio-buckets", "mlflow", "airflow-init", "airflow-api-server", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "predictor", "pushgateway", "prometheus", "grafana"}


def compose(env_file, *args):
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.fail("docker-compose not found: `make test-tools` installs Debian's docker-compose")
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(LOCAL / "docker-compose.yaml"), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_compose_file_is_valid_and_runs_the_whole_platform_on_loopback(tmp_path):
    env = tmp_path / ".env"
    env.write_text((LOCAL / ".env.example").read_text())
    assert compose(env, "config", "-q").returncode == 0
    out = compose(env, "config")
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert set(config["services"]) == SERVICES
    for name, svc in config["services"].items():
        image = svc["image"]
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), (name, image)
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:") or (isinstance(port, dict) and port.get("host_ip") == "127.0.0.1"), \
                (name, port)
    # the platform's images are built from the repository's Dockerfiles; Airflow runs the local profile
    assert config["services"]["airflow-scheduler"]["build"]["target"] == "airflow-local"
    assert config["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert config["services"]["mlflow"]["build"]["dockerfile"] == "docker/platform.Dockerfile"
    # Grafana gets the chart's dashboards, Prometheus the chart's rules
    volumes = " ".join(map(str, config["services"]["grafana"]["volumes"] + config["services"]["prometheus"]["volumes"]))
    assert "files/grafana" in volumes and "files/prometheus/rules.yaml" in volumes


def test_every_secret_comes_from_the_env_file_and_a_missing_one_is_named(tmp_path):
    text = (LOCAL / "docker-compose.yaml").read_text()
    example = dict(line.split("=", 1) for line in (LOCAL / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used <= set(example), used - set(example)
    assert all("CHANGE-ME" in example[k] for k in example if k.endswith(("PASSWORD", "SECRET")))
    assert "local/.env" in (ROOT / ".gitignore").read_text()
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in example.items() if k != "MINIO_ROOT_PASSWORD"))
    out = compose(env, "config", "-q")
    assert out.returncode != 0 and "MINIO_ROOT_PASSWORD" in out.stderr


def test_the_kind_install_is_valid():
    cluster = yaml.safe_load((LOCAL / "kind" / "cluster.yaml").read_text())
    assert cluster["kind"] == "Cluster" and cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert cluster["networking"]["apiServerAddress"] == "127.0.0.1"
    assert all(re.search(r":v\d", n["image"]) for n in cluster["nodes"])
    script = (LOCAL / "kind" / "up.sh").read_text()
    assert subprocess.run(["bash", "-n", str(LOCAL / "kind" / "up.sh")]).returncode == 0
    for operator in ("spark-operator", "kserve", "kube-prometheus-stack", "cloudnative-pg", "apache-airflow/airflow"):
        assert operator in script, operator
    # every Secret the chart names is made by the script
    values = yaml.safe_load((ROOT / "helm" / "churn-platform" / "values.yaml").read_text())
    for name in values["secrets"].values():
        assert re.search(rf"secret {name} ", script), name
