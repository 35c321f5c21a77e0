"""Servers only the tests (and benchmarks) start: an S3 endpoint and an MLflow tracking server on
loopback. The product never starts these; in a cluster they are MinIO and a real MLflow server.

* S3: moto's server mode, a real S3 HTTP endpoint (MinIO is not installable here; the
  docker-compose and Helm deployments use MinIO).
* MLflow: ``mlflow server`` from the platform environment, SQLite backend.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from churn.core.errors import SetupError


@dataclass
class S3Server:
    """moto's S3 server on loopback, as a process of its own (``python -m moto.server``).

    Its own process, not a thread of the test process: Spark's S3A client and delta-rs hammer it
    with small requests, and in a thread it competed for the test process's GIL (test_s3 alone:
    90 s with the server in a thread, 79 s with it in its own process)."""

    port: int
    access_key: str = "churn-test"
    secret_key: str = "churn-test-secret"
    region: str = "us-east-1"
    _proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        import sys

        self._proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self._proc.poll() is not None:
                raise SetupError(f"moto S3 server exited with {self._proc.returncode} (port {self.port})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SetupError(f"moto S3 server did not start on port {self.port}")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


@dataclass
class MlflowServer:
    """An MLflow tracking server (``mlflow server``) on loopback: a SQLite backend store and artifacts
    wherever ``artifact_root`` says (an ``s3://`` root is written by the clients themselves, with
    their S3 settings, since the server runs with ``--no-serve-artifacts``)."""

    backend_uri: str
    artifact_root: str
    port: int
    log_file: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "MlflowServer":
        import sys
        import urllib.request

        exe = Path(sys.executable).parent / "mlflow"
        cmd = [str(exe), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", self.backend_uri, "--default-artifact-root", self.artifact_root,
               "--no-serve-artifacts"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"mlflow server exited with {self.proc.returncode} (see {self.log_file})")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:  # noqa: S310 - loopback
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SetupError(f"mlflow server did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class FaultProxy:
    """A reverse proxy on loopback in front of a real server, answering chosen requests itself with
    an error status: fault injection into the real component (everything else reaches it unchanged).

    ``fail(method, path)`` returns the status to answer with, or None to forward."""

    def __init__(self, target: str, fail):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.target, self.fail, self.failed = target.rstrip("/"), fail, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                import urllib.error
                import urllib.request

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                status = proxy.fail(self.command, self.path)
                if status:
                    proxy.failed.append((self.command, self.path, status))
                    data = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected by FaultProxy"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(proxy.target + self.path, data=body, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - loopback
                        code, data, out_headers = r.status, r.read(), r.headers
                except urllib.error.HTTPError as err:
                    code, data, out_headers = err.code, err.read(), err.headers
                self.send_response(code)
                for k, v in out_headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        from churn.core.net import free_port

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        import threading

        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Observability:
    """Prometheus and a Pushgateway (Debian's ``prometheus``, ``prometheus-pushgateway``) on loopback:
    Prometheus scrapes the Pushgateway (``honor_labels``, as in a cluster) and the given predictor
    targets every second, and loads the platform's alert rules."""

    folder: Path
    rules: Path
    predictors: tuple[str, ...] = ()
    prometheus_port: int = 0
    pushgateway_port: int = 0
    _procs: tuple = ()

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.pushgateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def start(self) -> "Observability":
        import shutil

        import yaml

        from churn.core.net import free_port

        for tool in ("prometheus", "prometheus-pushgateway"):
            if shutil.which(tool) is None:
                raise SetupError(f"{tool} is not installed: apt-get install prometheus prometheus-pushgateway")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prometheus_port, self.pushgateway_port = free_port(), free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules)],
            "scrape_configs": [
                {"job_name": "pushgateway", "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{self.pushgateway_port}"]}]},
                {"job_name": "churn-predictor", "static_configs": [{"targets": list(self.predictors)}]},
            ],
        }
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(self.folder / "servers.log", "ab")
        push = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.pushgateway_port}"],
                                stdout=log, stderr=log)
        prom = subprocess.Popen(["prometheus", f"--config.file={self.folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={self.folder / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{self.prometheus_port}"], stdout=log, stderr=log)
        self._procs = (push, prom)
        for port in (self.pushgateway_port, self.prometheus_port):
            deadline = time.time() + 30
            while True:
                if any(p.poll() is not None for p in self._procs):
                    self.stop()
                    raise SetupError(f"Prometheus or the Pushgateway exited; see {self.folder / 'servers.log'}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        self.stop()
                        raise SetupError(f"nothing listens on port {port}; see {self.folder / 'servers.log'}") from None
                    time.sleep(0.1)
        return self

    def query(self, path: str, **params) -> dict:
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)

    def stop(self) -> None:
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
