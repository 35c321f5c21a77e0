"""Local services for the embedded profile and the tests: a PostgreSQL server and an S3 endpoint.

Nothing runs on a fresh machine. ``make test`` (through the pytest session) and ``make demo``
start what they need here and stop it afterwards (the demo leaves PostgreSQL up for analysts and
prints the command that stops it). In a cluster, these are real services named by settings.

* PostgreSQL: Debian's server binaries (``/usr/lib/postgresql/<v>/bin``); ``initdb`` refuses to
  run as root, so as root the server runs as the ``postgres`` user.
* S3: moto's server mode, a real S3 HTTP endpoint on loopback (MinIO is not installable here; the
  docker-compose and Helm deployments use MinIO).
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from churn.errors import SetupError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SetupError("PostgreSQL server binaries not found: apt-get install postgresql (initdb, pg_ctl)")


@dataclass
class Postgres:
    data_dir: Path
    port: int
    user: str = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            line = " ".join(shlex.quote(c) for c in cmd)
            cmd = ["su", "postgres", "-s", "/bin/bash", "-c", line]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SetupError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> "Postgres":
        bindir = _pg_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
            os.chmod(self.data_dir, 0o700)
            # the postgres user must be able to reach the folder
            for parent in list(self.data_dir.parents)[:-1]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                       "-E", "UTF8", "--no-instructions"])
        if self.is_running():
            return self
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-o", opts, "-l",
                   str(self.data_dir / "server.log"), "-w", "-t", "60", "start"])
        return self

    def is_running(self) -> bool:
        return self._run([str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False).returncode == 0

    def stop(self) -> None:
        if self.data_dir.exists() and self.is_running():
            self._run([str(_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], check=False)

    def stop_command(self) -> str:
        cmd = f"{_pg_bin() / 'pg_ctl'} -D {self.data_dir} stop"
        return f"su postgres -s /bin/bash -c '{cmd}'" if os.geteuid() == 0 else cmd


@dataclass
class S3Server:
    """moto's S3 server on loopback, in a thread of this process."""

    port: int
    access_key: str = "churn-test"
    secret_key: str = "churn-test-secret"
    region: str = "us-east-1"
    _server: object = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise SetupError(f"moto S3 server did not start on port {self.port}")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


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
