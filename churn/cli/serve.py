"""``churn serve``: the online predictor (KServe ModelServer, v1 and v2 protocols)."""

from __future__ import annotations

from churn.cli import add_command, settings_of


def cmd_serve(args) -> int:
    from ml.serving.server import serve

    return serve(settings_of(args), port=args.port, poll_seconds=args.poll_seconds)


def register(sub, common) -> None:
    sv = add_command(sub, "serve", cmd_serve, "the online predictor (KServe, v1 and v2 protocols) on a local port",
                     "churn serve --port 8080", common)
    sv.add_argument("--port", type=int, default=8080, help="HTTP port (KServe binds every interface)")
    sv.add_argument("--poll-seconds", type=float, default=30.0, help="how often to check the champion alias")
