"""The ``churn`` command line, the top layer: it wires the command groups and imports the platform
lazily (``churn --help`` starts no JVM and loads no ML library).

Each group lives in its own module with its parsers next to their handlers:
``lakehouse`` (generate, run, import-snapshot, tables, jars, spark-gateway, score),
``pipeline`` (nightly, pipeline), ``models`` (train, promote, rollback, models),
``db`` (db, publish) and ``serve``. Every subcommand takes ``--config`` and ``-v``, has help text and
an example, and exits non-zero on failure with a one-line reason.
"""

from __future__ import annotations

import argparse
import sys

from churn.core import logs
from churn.core.errors import ChurnError


def settings_of(args):
    """The command's settings; from here on logs and the error line redact their secrets."""
    from churn.core import logs
    from churn.core.settings import load_settings

    args._settings = load_settings(getattr(args, "config", None))
    logs.redact_with(args._settings)
    return args._settings


def common_options() -> argparse.ArgumentParser:
    """``--config`` and ``-v``, accepted after any subcommand (and ``-v`` before it too)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="settings YAML (else CHURN_CONFIG and CHURN_* variables)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return common


def add_command(sub, name: str, handler, help: str, example: str, common: argparse.ArgumentParser):
    """A subcommand with its help line, one example, the common options and its handler."""
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", parents=[common],
                       epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=handler)
    return p


def cmd_settings(args) -> int:
    import json

    print(json.dumps(settings_of(args).as_dict(), indent=1, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from churn import __version__
    from churn.cli import db, lakehouse, models, pipeline, serve

    p = argparse.ArgumentParser(prog="churn", description="Churn prediction platform: lakehouse, models, nightly "
                                "scoring, publishing and online serving. `churn COMMAND --help` for each command.")
    p.add_argument("-v", "--verbose", action="store_true", default=False, help="debug logging")
    p.add_argument("--version", action="version", version=f"churn-platform {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for group in (lakehouse, pipeline, models, db, serve):
        group.register(sub, common)
    add_command(sub, "settings", cmd_settings, "print the effective settings (secrets redacted)",
                "churn settings --config cluster.yaml", common)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    try:
        return args.func(args)
    except ChurnError as exc:
        from churn.core.settings import redact_text

        print(f"error: {redact_text(str(exc), getattr(args, '_settings', None))}", file=sys.stderr)
        return exc.exit_code
