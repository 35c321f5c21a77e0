"""Logging set-up shared by every command: timestamped lines a person can follow, and none of
them carrying a secret (every handler redacts the settings' secrets and URI credentials)."""

import logging
import os
import sys


class Redacting(logging.Filter):
    """Rewrites a record's message with the secrets of the settings (and URI credentials) as ***."""

    def __init__(self, settings=None):
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        from churn.core.settings import redact_text

        message = record.getMessage()
        clean = redact_text(message, self.settings)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup(verbose: bool = False, settings=None) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    redact_with(settings)
    for noisy in ("py4j", "great_expectations", "urllib3", "botocore", "alembic", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow's artifact download bars are for a person at a terminal, not a task log or a pod's
    if not sys.stderr.isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def redact_with(settings) -> None:
    """Every root handler redacts these settings' secrets from now on (call once they are loaded)."""
    for handler in logging.getLogger().handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, Redacting)] + [Redacting(settings)]
