"""A Spark standalone cluster on this machine: one master and N workers started from the installed
pyspark (``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``) on loopback.

What the platform's jobs run on to show they scale out, not only on ``local[*]``: the driver is a
separate JVM from the executors, tasks and shuffle blocks cross processes, the jars are shipped by
``spark.jars`` (spark_jobs/session.py) as on Kubernetes, and each executor has its own Python
workers. ``CHURN_SPARK_MASTER=<cluster.master>`` points any step at it.

    python -m spark_jobs.standalone --workers 2 --cores 1 --memory 3g   # prints the master URL, serves until ^C
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from churn.core.errors import ChurnError
from churn.core.net import free_port


class ClusterError(ChurnError):
    """The standalone cluster did not come up."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


class StandaloneCluster:
    """``with StandaloneCluster(workers=2) as c: ...`` (``c.master`` is the ``spark://`` URL)."""

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "2g", work_dir: str | Path | None = None):
        self.workers, self.cores, self.memory = workers, cores, memory
        self._tmp = None if work_dir else tempfile.mkdtemp(prefix="churn-standalone-")
        self.dir = Path(work_dir or self._tmp)
        self.port, self.ui_port = free_port(), free_port()
        self.master = f"spark://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        home = spark_home()
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.dir),
               "SPARK_WORKER_DIR": str(self.dir / "work"), "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
               "SPARK_NO_DAEMONIZE": "1"}
        log = open(self.dir / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def start(self, timeout: float = 120) -> "StandaloneCluster":
        self.dir.mkdir(parents=True, exist_ok=True)
        self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port),
                               "--webui-port", str(self.ui_port)])
        for i in range(self.workers):
            self._spawn(f"worker-{i + 1}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                            "--cores", str(self.cores), "--memory", self.memory, "--webui-port",
                                            str(free_port()), "--work-dir", str(self.dir / "work"), self.master])
        deadline = time.time() + timeout
        while time.time() < deadline:
            dead = [p.args[1] for p in self.procs if p.poll() is not None]
            if dead:
                self.stop()
                raise ClusterError(f"standalone cluster: {', '.join(dead)} exited; logs in {self.dir}")
            if self.alive_workers() == self.workers:
                return self
            time.sleep(0.5)
        self.stop()
        raise ClusterError(f"standalone cluster: {self.workers} worker(s) not registered with {self.master} after "
                           f"{timeout:.0f} s; logs in {self.dir}")

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as resp:
            return json.load(resp)

    def alive_workers(self) -> int:
        try:
            return sum(w.get("state") == "ALIVE" for w in self.state().get("workers", []))
        except OSError:
            return 0

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A Spark standalone cluster on loopback (master + workers).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cores", type=int, default=1, help="cores per worker")
    ap.add_argument("--memory", default="2g", help="memory per worker (its executors' total)")
    ap.add_argument("--work-dir", help="logs and executor folders (default: a temporary folder)")
    args = ap.parse_args(argv)
    with StandaloneCluster(args.workers, args.cores, args.memory, args.work_dir) as cluster:
        print(f"CHURN_SPARK_MASTER={cluster.master}  (master UI http://127.0.0.1:{cluster.ui_port}); ^C stops it",
              flush=True)
        try:
            while all(p.poll() is None for p in cluster.procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
