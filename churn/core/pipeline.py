"""The platform's pipelines as data: ``pipelines.yaml`` beside this file, read into typed steps.

The declaration is data rather than code because two Python environments read it: the platform's
(``churn nightly``, ``churn run``, tests, benchmarks; see ``churn.runner``) and Airflow's
(``dags/churn_dags``), which must not import platform code. This module also holds what every step
command shares: the ``StepRun`` a step's ``run_step`` receives, and ``step_main``, the
``python -m <module> --date D`` entry point.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

from churn.core.dates import check_not_future, date_range, parse_date
from churn.core.errors import ChurnError, ConfigError, InputError

PIPELINES_FILE = Path(__file__).with_name("pipelines.yaml")
KINDS = ("spark", "process", "sensor")
_STEP_FIELDS = {"name", "module", "args", "kind", "dated", "ranges", "every", "timeout_minutes", "reads", "writes",
                "outlets", "signals", "doc"}
log = logging.getLogger("churn.pipeline")


@dataclass(frozen=True)
class Step:
    name: str
    module: str
    kind: str
    doc: str
    args: tuple[str, ...] = ()
    dated: bool = True
    ranges: bool = False
    every: bool = False
    timeout_minutes: int = 120
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    outlets: tuple[dict, ...] = ()
    signals: tuple[dict, ...] = ()

    @property
    def writes_lake(self) -> bool:
        """It writes lake tables: it holds the lake's lock while it runs (churn/core/lock.py) and
        takes the lake writers' one-slot pool in Airflow (dags/churn_dags)."""
        return any(w.startswith("lake:") for w in self.writes)

    def argv(self, date: str) -> list[str]:
        """The step's command-line arguments for one logical date (``{{ ds }}`` in a DAG)."""
        return [*self.args, *(["--date", date] if self.dated else [])]


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    steps: tuple[Step, ...]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise InputError(f"pipeline {self.name} has no step {name!r}; its steps: {', '.join(self.names)}")

    def select(self, names: list[str] | None) -> list[Step]:
        """The named steps in pipeline order (all of them for None); unknown names are an error."""
        if not names:
            return list(self.steps)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise InputError(f"--steps: unknown step(s) {', '.join(unknown)}; the {self.name} pipeline's steps: "
                             f"{', '.join(self.names)}")
        return [s for s in self.steps if s.name in names]

    @property
    def range_steps(self) -> list[Step]:
        """The steps that also run over a date range in one pass (the lakehouse build, a backfill)."""
        return [s for s in self.steps if s.ranges]


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with name, module, kind and doc")
    unknown = sorted(set(raw) - _STEP_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_STEP_FIELDS))}")
    missing = [k for k in ("name", "module", "kind", "doc") if not raw.get(k)]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    if raw["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind {raw['kind']!r}, expected one of {', '.join(KINDS)}")
    return Step(name=raw["name"], module=raw["module"], kind=raw["kind"], doc=raw["doc"],
                args=tuple(raw.get("args") or ()), dated=bool(raw.get("dated", True)),
                ranges=bool(raw.get("ranges", False)), every=bool(raw.get("every", False)),
                timeout_minutes=int(raw.get("timeout_minutes", 120)), reads=tuple(raw.get("reads") or ()),
                writes=tuple(raw.get("writes") or ()), outlets=tuple(raw.get("outlets") or ()),
                signals=tuple(_signal(x, f"{where}.signals") for x in raw.get("signals") or ()))


def _signal(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict) or set(raw) != {"name", "when"} or not all(isinstance(v, str) and v for v in raw.values()):
        raise ConfigError(f"{where}: expected {{name: <asset>, when: <dotted key of the step's result>}}, got {raw!r}")
    return dict(raw)



@lru_cache(maxsize=None)
def declaration(path: Path = PIPELINES_FILE) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"pipeline declaration {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pipelines"), dict):
        raise ConfigError(f"pipeline declaration {path}: expected a mapping with 'platform' and 'pipelines'")
    return data


def load_pipeline(name: str = "nightly", path: Path = PIPELINES_FILE) -> Pipeline:
    data = declaration(path)["pipelines"]
    if name not in data:
        raise ConfigError(f"pipeline declaration {path} has no pipeline {name!r}; it declares {', '.join(data)}")
    raw = data[name]
    steps = tuple(_step(s, f"{path}: pipelines.{name}.steps[{i}]") for i, s in enumerate(raw.get("steps") or []))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: pipelines.{name} declares a step name twice: {names}")
    return Pipeline(name, raw.get("description", ""), steps)


def platform_defaults(path: Path = PIPELINES_FILE) -> dict:
    """What both environments default to: the platform image, CHURN_HOME, and the lake under it."""
    return dict(declaration(path).get("platform") or {})


# ---- one run of a step ---------------------------------------------------------------------------
@dataclass
class StepRun:
    """What a step's ``run_step`` gets: settings, the logical date or range, and Spark on first use."""

    settings: Any
    start: dt.date
    end: dt.date
    every: int = 1
    step: str = ""
    #: run although earlier dates' drops were never ingested (``--force``; see spark_jobs.ingest)
    force: bool = False
    spark_factory: Callable[[], Any] | None = field(default=None, repr=False)
    _spark: Any = field(default=None, repr=False)

    @property
    def spark(self):
        if self._spark is None:
            if self.spark_factory is None:
                raise ConfigError(f"step {self.step or '?'} needs Spark but its runner gave it none")
            self._spark = self.spark_factory()
        return self._spark

    @property
    def date(self) -> dt.date:
        """The one logical date of a step that takes no range."""
        if self.start != self.end:
            raise InputError(f"step {self.step or '?'} takes one date, got {self.start}..{self.end}: run it per date")
        return self.end

    @property
    def dates(self) -> list[dt.date]:
        """Snapshot dates of a range: every ``every`` days, the end date always included."""
        return date_range(self.start, self.end, self.every)


# ---- the command line of a single step: python -m <module> --date D -----------------------------
def add_date_arguments(p: argparse.ArgumentParser, ranges: bool = True, every: bool = False) -> None:
    p.add_argument("--date", help="logical date YYYY-MM-DD (the run's partition), e.g. 2026-01-31")
    if ranges:
        p.add_argument("--start", help="first date of a range (a backfill in one pass)")
        p.add_argument("--end", help="last date of a range (inclusive)")
    if every:
        p.add_argument("--every", type=int, default=1, help="within a range, a feature snapshot every N days "
                                                           "(the end date always included)")


def dates_from_args(args) -> tuple[dt.date, dt.date]:
    start_arg, end_arg = getattr(args, "start", None), getattr(args, "end", None)
    if args.date and (start_arg or end_arg):
        raise InputError("give either --date or --start/--end, not both")
    if args.date:
        d = parse_date(args.date)
        return d, d
    if not (start_arg and end_arg):
        raise InputError("give --date YYYY-MM-DD" + (", or --start and --end for a range" if hasattr(args, "start") else ""))
    start, end = parse_date(start_arg, "--start"), parse_date(end_arg, "--end")
    date_range(start, end)
    return start, end


def step_main(name: str, run_step: Callable[[StepRun], Any], argv: list[str] | None = None,
              spark_factory: Callable[[Any, str], Any] | None = None, pipeline: str = "nightly") -> int:
    """``python -m <module> [--date D | --start D1 --end D2]`` for the declared step ``name``."""
    from churn.core import logs
    from churn.core.settings import load_settings

    step = load_pipeline(pipeline).step(name)
    p = argparse.ArgumentParser(prog=f"python -m {step.module}", description=step.doc,
                                epilog=f"example: python -m {step.module} {' '.join(step.argv('2026-01-31'))}".rstrip())
    if step.dated:
        add_date_arguments(p, ranges=step.ranges, every=step.every)
        p.add_argument("--force", action="store_true", help="run even if drops of earlier dates were never "
                       "ingested (a night out of order; rerun it once they are)")
    p.add_argument("--config", help="settings YAML (else CHURN_CONFIG and CHURN_* variables)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logs.setup(args.verbose)
    settings, result, ok, t0 = None, None, False, time.time()
    start = end = None
    try:
        if step.dated:
            start, end = dates_from_args(args)
            check_not_future(end)
        else:
            start = end = dt.datetime.now(dt.timezone.utc).date()
        settings = load_settings(args.config)
        logs.redact_with(settings)
        factory = (lambda: spark_factory(settings, f"churn-{name}")) if spark_factory else None
        run = StepRun(settings, start, end, getattr(args, "every", 1), name, getattr(args, "force", False), factory)
        t0 = time.time()
        if step.writes_lake:
            from churn.core.lock import LakeLock

            with LakeLock(settings):  # one writer per lake: refuses (or waits) while another writes
                result = run_step(run)
        else:
            result = run_step(run)
        ok = True
        what = "" if not step.dated else f" {start}" if start == end else f" {start}..{end}"
        log.info("%s%s done in %.1fs: %s", name, what, time.time() - t0, result)
        _push(settings, pipeline, step, end, time.time() - t0, result, ok)
        if step.signals:  # the DAG relays the result's signals as Asset events (dags/churn_dags): the
            _emit_result(result)  # last line of output
        return 0
    except ChurnError as exc:
        from churn.core.settings import redact_text

        log.error("%s failed: %s", name, exc)
        print(f"error: {redact_text(str(exc), settings)}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not ok:  # a failure (an error, a crash) is a metric too
            _push(settings, pipeline, step, end, time.time() - t0, None, ok)


def _push(settings, pipeline: str, step: Step, night, seconds: float, result: Any, ok: bool) -> None:
    """The step run's metrics to the Pushgateway, when one is set (churn/core/metrics.py)."""
    if settings is not None and settings.pushgateway_url:
        from churn.core import metrics

        metrics.push_step(settings, pipeline, step, night if step.dated else None, seconds, result, ok)


def _emit_result(result: Any) -> None:
    """The result as one JSON line, last on stdout (Airflow's BashOperator pushes it as the task's
    XCom), and into ``CHURN_RESULT_FILE`` when set (a pod's /airflow/xcom/return.json)."""
    import json
    import os

    text = json.dumps(result, default=str, separators=(",", ":"))
    if os.environ.get("CHURN_RESULT_FILE"):
        path = Path(os.environ["CHURN_RESULT_FILE"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(text, flush=True)
