"""Logging set-up shared by every command: timestamped lines a person can follow."""

import logging
import sys


def setup(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("py4j", "great_expectations", "urllib3", "botocore", "alembic", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
