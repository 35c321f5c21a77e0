"""The raw landing zone: is every drop of a date complete? Checked without Spark, before ingest.

Exporters drop each source's files for day D into ``<raw>/<source>/ingest_date=D`` and write the
drop's completion marker (``churn.core.sources.MARKER``, with each file's row count) last. The
nightly's ``wait_for_drops`` step waits for all of D's markers:

* in Airflow's local profile it is a ``BashSensor`` in reschedule mode (no worker slot held while
  it waits), poking ``python -m churn.landing --date D``: exit 0 when every marker is in, 75
  (EX_TEMPFAIL) while some are missing and D's deadline has not passed, 1 once it has;
* in the kubernetes profile, a pod running ``python -m churn.landing --poll 300 --date D``, which
  polls itself until the markers are in or the deadline passes;
* in ``churn nightly`` (in one process) it checks once.

D's deadline is ``drops_deadline_hours`` after D's day ends (UTC). Past it the step fails with a
message naming every missing drop. Ingest then checks each file against its marker's count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from churn.core.errors import ChurnError, InputError
from churn.core.pipeline import StepRun
from churn.core.settings import Settings
from churn.core.sources import MARKER, SOURCES

log = logging.getLogger("churn.landing")


class DropsNotReady(InputError):
    """Some drops of the date are not complete yet, and its deadline has not passed: try later."""

    exit_code = 75  # EX_TEMPFAIL: the sensor pokes again


def _filesystem(settings: Settings, uri: str):
    """A pyarrow file system and the path in it for ``uri`` (a folder, file:// or s3a://)."""
    from pyarrow import fs

    if uri.startswith(("s3a://", "s3://")):
        endpoint = settings.s3_endpoint
        s3 = fs.S3FileSystem(access_key=settings.s3_access_key or None, secret_key=settings.s3_secret_key or None,
                             region=settings.s3_region, endpoint_override=endpoint or None,
                             scheme="http" if endpoint.startswith("http://") else "https",
                             force_virtual_addressing=not settings.s3_path_style,
                             connect_timeout=5, request_timeout=15)
        return s3, uri.split("://", 1)[1]
    return fs.LocalFileSystem(), uri[len("file://"):] if uri.startswith("file://") else uri


def missing_drops(settings: Settings, d: dt.date) -> list[str]:
    """The drop folders of ``d`` whose completion marker is not in (yet)."""
    from pyarrow import fs

    raw = settings.raw_uri.rstrip("/")
    filesystem, root = _filesystem(settings, raw)
    names = [f"{s}/ingest_date={d.isoformat()}" for s in SOURCES]
    infos = filesystem.get_file_info([f"{root}/{n}/{MARKER}" for n in names])
    return [f"{raw}/{n}" for n, info in zip(names, infos) if info.type != fs.FileType.File]


def deadline(settings: Settings, d: dt.date) -> dt.datetime:
    """When D's drops must be complete: ``drops_deadline_hours`` after D's day ends, UTC."""
    end_of_day = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return end_of_day + dt.timedelta(hours=settings.drops_deadline_hours)


def check(settings: Settings, d: dt.date, now: dt.datetime | None = None) -> dict:
    """Every drop of ``d`` is complete, or ``DropsNotReady`` (before its deadline) / ``InputError`` (past it)."""
    missing = missing_drops(settings, d)
    if not missing:
        return {"date": str(d), "complete": len(SOURCES)}
    now = now or dt.datetime.now(dt.timezone.utc)
    due = deadline(settings, d)
    listed = "\n  ".join(missing)
    if now < due:
        raise DropsNotReady(f"{len(missing)} drop(s) of {d} not complete yet (no {MARKER} marker); waiting until "
                            f"{due.isoformat(timespec='minutes')}:\n  {listed}")
    raise InputError(f"{len(missing)} drop(s) of {d} still not complete at the deadline "
                     f"{due.isoformat(timespec='minutes')} (CHURN_DROPS_DEADLINE_HOURS={settings.drops_deadline_hours:g} "
                     f"after the day ends; no {MARKER} marker), so the night stops here:\n  {listed}")


def run_step(job: StepRun) -> dict:
    """The pipeline's ``wait_for_drops`` step (churn/core/pipelines.yaml): one check."""
    return check(job.settings, job.date)


def main(argv: list[str] | None = None) -> int:
    from churn.core import logs
    from churn.core.dates import parse_date
    from churn.core.settings import load_settings

    p = argparse.ArgumentParser(prog="python -m churn.landing", description=__doc__.split("\n\n")[0],
                                epilog="example: python -m churn.landing --date 2026-01-31")
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD: wait for that day's drops")
    p.add_argument("--poll", type=float, default=0.0,
                   help="seconds between checks until complete or past the deadline (default 0: check once)")
    p.add_argument("--config", help="settings YAML (else CHURN_CONFIG and CHURN_* variables)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logs.setup(args.verbose)
    settings = None
    try:
        settings, d = load_settings(args.config), parse_date(args.date)
        logs.redact_with(settings)
        while True:
            try:
                result = check(settings, d)
                log.info("every drop of %s is complete: %s", d, result)
                return 0
            except DropsNotReady as exc:
                if args.poll <= 0:
                    raise
                log.info("%s", exc)
                time.sleep(args.poll)
    except ChurnError as exc:
        from churn.core.settings import redact_text

        (log.info if isinstance(exc, DropsNotReady) else log.error)("wait_for_drops: %s", exc)
        print(f"error: {redact_text(str(exc), settings)}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
