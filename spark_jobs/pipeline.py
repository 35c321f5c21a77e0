"""The lakehouse steps wired by name, in order; ``churn run`` runs any subset for a date or range.

For a range, every raw drop in it is ingested, validated and merged into silver in one pass per
table (one Delta commit each, not one per day), snapshots are built every ``every`` days (the end
date always included) and labels are filled as of the end date. The result is the same as running
each day in order; it is just not paid for 30 times.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from churn.settings import Settings
from spark_jobs import build_features, ingest, labels, silver, validate
from spark_jobs.common import date_range

log = logging.getLogger("spark_jobs.pipeline")

STEPS = ("ingest", "validate", "silver", "features", "labels")


def parse_steps(text: str | None) -> list[str]:
    from churn.errors import InputError

    if not text:
        return list(STEPS)
    asked = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in asked if s not in STEPS]
    if unknown:
        raise InputError(f"--steps: unknown step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}")
    return [s for s in STEPS if s in asked]  # always in pipeline order


def run_steps(spark, settings: Settings, start: dt.date, end: dt.date, steps: list[str], every: int = 1) -> dict:
    results = {}
    for step in steps:
        t0 = time.time()
        log.info("[%d/%d] %s %s..%s", steps.index(step) + 1, len(steps), step, start, end)
        if step == "ingest":
            results[step] = ingest.run(spark, settings, start, end)
        elif step == "validate":
            results[step] = validate.run(spark, settings, start, end)
        elif step == "silver":
            results[step] = silver.run(spark, settings, start, end)
        elif step == "features":
            results[step] = build_features.run(spark, settings, date_range(start, end, every))
        elif step == "labels":
            results[step] = labels.run(spark, settings, end)
        log.info("[%d/%d] %s done in %.1fs", steps.index(step) + 1, len(steps), step, time.time() - t0)
    return results
