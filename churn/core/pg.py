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


def as_publisher(conn, settings: Settings) -> None:
    """Work as ``settings.pg_publish_role`` on ``conn`` from here on: the role that owns what a publish
    swaps and writes the monitoring rows, and nothing else (migrations 0004, 0005), whatever else the
    login role may do."""
    import psycopg
    from psycopg import sql

    role = settings.pg_publish_role
    if role.lower() == "none":  # as in SET ROLE NONE: the login role's own rights
        return
    try:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    except psycopg.errors.InvalidParameterValue:
        raise InputError(f"PostgreSQL has no role {role!r} (CHURN_PG_PUBLISH_ROLE): apply the migrations first "
                         "(`churn db upgrade`, the nightly's db_upgrade step)") from None
    except psycopg.errors.InsufficientPrivilege:
        (login,) = conn.execute("SELECT session_user").fetchone()
        raise InputError(f"the login role {login!r} of CHURN_PG_URL may not publish: it is not a member of {role!r} "
                         f"(CHURN_PG_PUBLISH_ROLE); GRANT {role} TO {login}") from None
