"""PostgreSQL for the published scores: versioned migrations (``churn db upgrade``, the nightly's
first step) and the embedded profile's own server (``churn db start|stop|status``).

Migrations are the ordered SQL files in ``churn/warehouse/migrations`` (``NNNN_name.sql``). ``upgrade``
applies, in order and each in its own transaction, the files not yet recorded in
``churn.schema_migrations`` (version, name, checksum, applied_at); a session advisory lock makes
concurrent upgrades wait for each other. An applied file whose content changed is an error, not a
silent re-run: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from churn.core.errors import ConfigError
from churn.core.net import free_port, port_free
from churn.core.pg import connect, local_dir, local_url
from churn.core.pipeline import StepRun, step_main
from churn.core.settings import Settings

log = logging.getLogger("churn.warehouse.db")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x636875726E  # "churn"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for path in sorted(folder.glob("*.sql")):
        m = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if not m:
            raise ConfigError(f"migration file {path} must be named NNNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migrations in {folder} share a version number")
    return out


# -- the embedded profile's own server (`churn db start`), used when CHURN_PG_URL is unset ----------

def local_server(settings: Settings):
    """The PostgreSQL kept under ``<home>/postgres`` for the embedded profile (not started here)."""
    from churn.warehouse.server import Postgres

    folder = local_dir(settings)
    port_file = folder / "port"
    if port_file.exists():
        port = int(port_file.read_text())
    else:
        folder.mkdir(parents=True, exist_ok=True)
        port = 5432 if port_free(5432) else free_port()
        port_file.write_text(str(port))
    return Postgres(folder / "data", port)


def start_local(settings: Settings) -> str:
    """Start (or find running) the embedded PostgreSQL with a ``churn`` database; its URL."""
    import psycopg

    server = local_server(settings).start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'churn'").fetchone():
            conn.execute("CREATE DATABASE churn")
    return local_url(settings, server.port)


def upgrade(settings: Settings, folder: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; returns the names applied (empty when up to date)."""
    applied_now = []
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS churn")
            conn.execute("""CREATE TABLE IF NOT EXISTS churn.schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())""")
            done = {v: (n, c) for v, n, c in conn.execute("SELECT version, name, checksum FROM churn.schema_migrations")}
            for m in migrations(folder):
                if m.version in done:
                    if done[m.version][1] != m.checksum:
                        raise ConfigError(f"migration {m.path.name} changed after it was applied "
                                          "(checksums differ): add a new migration instead of editing it")
                    continue
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute("INSERT INTO churn.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                 (m.version, m.name, m.checksum))
                log.info("applied migration %s", m.path.name)
                applied_now.append(m.path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def run_step(job: StepRun) -> dict:
    """The pipeline's ``db_upgrade`` step (churn/core/pipelines.yaml)."""
    return {"applied": upgrade(job.settings)}


def main(argv: list[str] | None = None) -> int:
    return step_main("db_upgrade", run_step, argv)


if __name__ == "__main__":
    raise SystemExit(main())
