"""Which PostgreSQL holds the published tables, and a connection to it.

``CHURN_PG_URL`` in a cluster; in the embedded profile, the server ``churn db start`` keeps under
``<home>/postgres`` (its port is in ``<home>/postgres/port``). Publishing, migrations and the online
predictor all connect through here, so they agree on where the data is and on timeouts.
"""

from __future__ import annotations

from pathlib import Path

from churn.core.errors import ConfigError, InputError
from churn.core.settings import Settings, redact_url

LOCAL_DIR = "postgres"  # under CHURN_HOME
LOCAL_DATABASE = "churn"


def local_dir(settings: Settings) -> Path:
    return Path(settings.home).resolve() / LOCAL_DIR


def local_url(settings: Settings, port: int | None = None) -> str:
    """URL of the embedded server's ``churn`` database (trust auth on loopback)."""
    if port is None:
        port = int((local_dir(settings) / "port").read_text())
    return f"postgresql://postgres@127.0.0.1:{port}/{LOCAL_DATABASE}"


def effective_url(settings: Settings) -> str:
    """``CHURN_PG_URL``, else the embedded server's when `churn db start` has set one up under home."""
    if settings.pg_url:
        return settings.pg_url
    folder = local_dir(settings)
    if (folder / "data" / "PG_VERSION").exists() and (folder / "port").exists():
        return local_url(settings)
    raise ConfigError("CHURN_PG_URL is not set and no local PostgreSQL runs under CHURN_HOME: point CHURN_PG_URL at "
                      "the PostgreSQL that holds the published scores, or start one with `churn db start`")


#: Every connection the platform opens: a bounded connect, and TCP keepalives so that a peer that
#: vanished (a failed-over database, a dropped NAT entry) is noticed in about a minute, not hours.
CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                "keepalives_count": 3}


def connect(settings: Settings, autocommit: bool = False):
    import psycopg

    url = effective_url(settings)
    try:
        return psycopg.connect(url, autocommit=autocommit, **CONNECT_ARGS)
    except psycopg.OperationalError as exc:
        raise InputError(f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).strip()}") from None
