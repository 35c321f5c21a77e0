"""Runs a declared pipeline (churn/core/pipelines.yaml) in this process: ``churn nightly``, ``churn
run``, the tests and the benchmarks. Airflow runs the same declaration, step by step, as commands
(dags/churn_dags).

Each step's module is imported by the name the declaration gives and its ``run_step`` called with a
``StepRun``; Spark starts on the first step that asks for it, and every step of the run shares it.
Steps are numbered once for the whole run: ``[3/8] validate ...``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import contextlib
import time
from typing import Any

from churn.core.errors import InputError
from churn.core.lock import LakeLock
from churn.core.pipeline import Pipeline, StepRun, load_pipeline
from churn.core.settings import Settings

log = logging.getLogger("churn.runner")


def run_pipeline(settings: Settings, start: dt.date, end: dt.date | None = None, *, steps: list[str] | None = None,
                 every: int = 1, spark: Any = None, pipeline: str | Pipeline = "nightly",
                 force: bool = False) -> dict[str, Any]:
    """Run ``steps`` (default: all) of ``pipeline`` for ``start``..``end``, in declared order.

    A range runs each step once over the whole range (one Delta commit per table); steps that take
    one date only refuse a range. ``spark``: a session to use; else one is started when first needed.
    ``force``: run although drops of earlier dates were never ingested (see spark_jobs.ingest).
    The whole run holds the lake's lock (churn/core/lock.py) when any chosen step writes the lake.
    """
    end = end or start
    p = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    chosen = p.select(steps)
    if start != end:
        single = [s.name for s in chosen if s.dated and not s.ranges]
        if single:
            raise InputError(f"step(s) {', '.join(single)} take one date, not the range {start}..{end}: "
                             "run them per date (`churn nightly --date D`)")
    holder: dict[str, Any] = {"spark": spark}

    def spark_factory():
        if holder["spark"] is None:
            from spark_jobs.session import get_spark

            holder["spark"] = get_spark(settings, f"churn-{p.name}")
        return holder["spark"]

    span = str(start) if start == end else f"{start}..{end}"
    results: dict[str, Any] = {}
    # one writer per lake: the lock is held for the whole run (before Spark starts, so a refused
    # run costs nothing), and checked before each step that writes the lake
    lock = LakeLock(settings) if any(s.writes_lake for s in chosen) else None
    with lock or contextlib.nullcontext() as held:
        for i, step in enumerate(chosen, 1):
            t0 = time.time()
            log.info("[%d/%d] %s %s", i, len(chosen), step.name, span if step.dated else "")
            if held is not None and step.writes_lake:
                held.check()
            module = importlib.import_module(step.module)
            ok = False
            try:
                results[step.name] = module.run_step(StepRun(settings, start, end, every, step.name, force, spark_factory))
                ok = True
            finally:
                if settings.pushgateway_url:  # as each step command does (churn/core/metrics.py)
                    from churn.core import metrics

                    metrics.push_step(settings, p.name, step, end if step.dated else None, time.time() - t0,
                                      results.get(step.name), ok)
            log.info("[%d/%d] %s done in %.1fs", i, len(chosen), step.name, time.time() - t0)
    return results


def build_lakehouse(settings: Settings, start: dt.date, end: dt.date, *, every: int = 1, spark: Any = None,
                    steps: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """The nightly's range steps over ``start``..``end`` (ingest .. labels): a history or a backfill."""
    p = load_pipeline("nightly")
    names = [s.name for s in p.range_steps if steps is None or s.name in steps]
    return run_pipeline(settings, start, end, steps=names, every=every, spark=spark, pipeline=p, force=force)
