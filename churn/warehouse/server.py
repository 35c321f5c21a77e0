"""A PostgreSQL server on loopback: the embedded profile's own (``churn db start``), the tests' and
the benchmarks' throwaway ones. In a cluster, PostgreSQL is a real service named by ``CHURN_PG_URL``.

Debian's server binaries (``/usr/lib/postgresql/<v>/bin``); ``initdb`` refuses to run as root, so
as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from churn.core.errors import SetupError


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
