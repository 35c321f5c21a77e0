"""``churn db`` (migrations; the embedded profile's own PostgreSQL) and ``churn publish``."""

from __future__ import annotations

import json

from churn.cli import add_command, settings_of
from churn.core.errors import ConfigError


def cmd_db(args) -> int:
    from churn.core.pg import local_url
    from churn.warehouse import db

    settings = settings_of(args)
    if args.action == "upgrade":
        applied = db.upgrade(settings)
        print("\n".join(f"applied {a}" for a in applied) or "database schema is up to date")
    elif settings.pg_url:
        raise ConfigError(f"CHURN_PG_URL is set: `churn db {args.action}` manages only the local server under CHURN_HOME")
    elif args.action == "start":
        url = db.start_local(settings)
        print(json.dumps({"url": url, "stop": f"churn db stop   (or: {db.local_server(settings).stop_command()})"}))
    elif args.action == "stop":
        db.local_server(settings).stop()
        print("local PostgreSQL stopped")
    else:
        server = db.local_server(settings)
        running = server.is_running()
        print(json.dumps({"running": running, "url": local_url(settings, server.port)}))
        return 0 if running else 3
    return 0


def cmd_publish(args) -> int:
    from churn.core.dates import check_not_future, parse_date
    from churn.warehouse.publish import publish

    d = parse_date(args.date)
    check_not_future(d)
    print(json.dumps(publish(settings_of(args), d), default=str))
    return 0


def register(sub, common) -> None:
    dbp = add_command(sub, "db", cmd_db, "PostgreSQL of the published scores: apply migrations; start/stop/status of "
                      "the local server under CHURN_HOME (used when CHURN_PG_URL is unset)", "churn db upgrade", common)
    dbp.add_argument("action", choices=["upgrade", "start", "stop", "status"],
                     help="upgrade: apply pending migrations; start/stop/status: the local server")
    pu = add_command(sub, "publish", cmd_publish, "publish D's scores to PostgreSQL (COPY, reconcile, one-transaction "
                     "swap)", "churn publish --date 2026-03-01", common)
    pu.add_argument("--date", required=True, help="score date YYYY-MM-DD (gold/customer_scores must hold it)")
