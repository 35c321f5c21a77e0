"""``churn generate | run | import-snapshot | tables | score | jars | spark-gateway``: the lakehouse."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from churn.cli import add_command, settings_of
from churn.core.errors import InputError

log = logging.getLogger("churn")


def cmd_generate(args) -> int:
    from churn.core.dates import parse_date
    from churn.core.sources import DEFECT_KINDS
    from churn.simulator import GeneratorConfig, generate

    s = settings_of(args)
    cfg = GeneratorConfig(
        customers=args.customers,
        start=parse_date(args.start, "--start"),
        days=args.days,
        seed=args.seed,
        out=args.out or s.raw_uri,
        oracle_dir=None if args.no_oracle else s.oracle_dir,
        horizon=s.label_horizon_days,
        drift=args.drift,
        drift_date=parse_date(args.drift_date, "--drift-date") if args.drift_date else None,
        defects=tuple(DEFECT_KINDS) if args.defects == "all" else tuple(x for x in (args.defects or "").split(",") if x),
        defect_rate=args.defect_rate,
        defect_mode=args.defect_mode,
    )
    if "://" in cfg.out:
        raise InputError(f"--out {cfg.out}: the generator writes to a local folder (raw exports land there)")
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(ci, nchunks, day, days, secs):
        finished = ci == nchunks - 1 and day == days - 1
        if tty and (time.time() - last[0] > 2 or finished):
            last[0] = time.time()
            done = (ci * days + day + 1) / (nchunks * days)
            print(f"\rgenerate: chunk {ci + 1}/{nchunks}, day {day + 1}/{days} ({done:.0%}, {secs:.0f}s)",
                  end="", file=sys.stderr, flush=True)
        elif not tty and finished:  # a log, not a terminal: one summary line
            print(f"generate: {nchunks} chunk(s) x {days} days in {secs:.0f}s", end="", file=sys.stderr)

    m = generate(cfg, progress=progress)
    print(file=sys.stderr)
    print(json.dumps({"out": cfg.out, "rows": dict(m.rows), "customers_total": m.customers_total,
                      "churned": m.churned, "defects": dict(m.defects)}, indent=1))
    return 0


def cmd_run(args) -> int:
    from churn.core.dates import check_not_future
    from churn.core.pipeline import dates_from_args, load_pipeline
    from churn.runner import run_pipeline

    start, end = dates_from_args(args)
    check_not_future(end)
    nightly = load_pipeline("nightly")
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else [s.name for s in nightly.range_steps]
    t0 = time.time()
    run_pipeline(settings_of(args), start, end, steps=steps, every=args.every, pipeline=nightly, force=args.force)
    log.info("run %s..%s (%s) finished in %.1fs", start, end, ",".join(steps), time.time() - t0)
    return 0


def cmd_import_snapshot(args) -> int:
    from churn.core.specs import load_spec
    from spark_jobs import import_snapshot
    from spark_jobs.session import get_spark

    s = settings_of(args)
    spec = load_spec(args.spec)
    from churn.core.lock import LakeLock

    with LakeLock(s):  # it writes gold/snapshots/<name>: one writer per lake
        result = import_snapshot.run(get_spark(s, "churn-import-snapshot"), s, spec)
    print(json.dumps(result, indent=1, default=str))
    return 0


def cmd_tables(args) -> int:
    """Rows, Delta version and partitioning of every lakehouse table (what `make demo` prints)."""
    from churn.core.lake import LAKE_TABLES, delta_table

    s = settings_of(args)
    print(f"{'table':36} {'rows':>12} {'version':>8}  partitions")
    for layer, name in LAKE_TABLES:
        table = delta_table(s, layer, name)
        if table is None:
            print(f"{layer + '/' + name:36} {'-':>12} {'-':>8}  (not built)")
            continue
        import pyarrow as pa

        rows = sum(pa.table(table.get_add_actions(flatten=True)).column("num_records").to_pylist())
        parts = ",".join(table.metadata().partition_columns) or "-"
        print(f"{layer + '/' + name:36} {rows:>12,} {table.version():>8}  {parts}")
    return 0


def cmd_score(args) -> int:
    from churn.core.dates import check_not_future, parse_date
    from churn.runner import run_pipeline

    d = parse_date(args.date)
    check_not_future(d)
    print(json.dumps(run_pipeline(settings_of(args), d, steps=["score"])["score"], default=str))
    return 0


def cmd_jars(args) -> int:
    from spark_jobs import jars

    print("\n".join(jars.fetch(settings_of(args), force=args.force)))
    return 0


def cmd_spark_gateway(args) -> int:
    from spark_jobs.session import serve_gateway

    settings = settings_of(args)
    path = Path(args.file or settings.spark_gateway or Path(settings.home) / "spark-gateway.json")
    serve_gateway(settings, path.resolve())
    return 0


def register(sub, common) -> None:
    from churn.core.sources import DEFECT_KINDS, DEFECT_MODES, DRIFT_KINDS

    g = add_command(sub, "generate", cmd_generate, "generate a customer base's daily raw exports (the simulator)",
                    "churn generate --customers 5000 --start 2026-01-01 --days 70 --defects all", common)
    g.add_argument("--customers", type=int, required=True, help="customers at the start (more sign up later)")
    g.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    g.add_argument("--days", type=int, required=True, help="how many daily drops to write")
    g.add_argument("--seed", type=int, default=42, help="random seed: the same seed gives the same exports")
    g.add_argument("--out", help="raw zone folder (default: CHURN_RAW_URI, i.e. $CHURN_HOME/raw)")
    g.add_argument("--drift", choices=DRIFT_KINDS, help="a drift event from --drift-date on")
    g.add_argument("--drift-date", help="first day of the drift event, YYYY-MM-DD")
    g.add_argument("--defects", help=f"comma list of {','.join(DEFECT_KINDS)}, or 'all'")
    g.add_argument("--defect-rate", type=float, default=0.01, help="share of rows each defect hits")
    g.add_argument("--defect-mode", choices=DEFECT_MODES, default="replace",
                   help="replace: defects corrupt true rows; add: corrupted extra copies beside the true rows")
    g.add_argument("--no-oracle", action="store_true", help="skip the true-probability side table")

    r = add_command(sub, "run", cmd_run, "run steps of the nightly pipeline for a date or a date range (default: the "
                    "lakehouse steps, ingest..labels)", "churn run --start 2026-01-01 --end 2026-03-01 --every 7", common)
    r.add_argument("--date", help="logical date YYYY-MM-DD")
    r.add_argument("--start", help="first date of a range (a backfill in one pass)")
    r.add_argument("--end", help="last date of a range (inclusive)")
    r.add_argument("--every", type=int, default=1, help="within a range, a feature snapshot every N days")
    r.add_argument("--force", action="store_true", help="run even if drops of dates before --start were never "
                   "ingested (a night out of order; rerun it once they are)")
    r.add_argument("--steps", help="comma list of steps of churn/core/pipelines.yaml, run in declared order "
                   "(default: those that take a range: ingest,validate,silver,features,labels)")

    i = add_command(sub, "import-snapshot", cmd_import_snapshot, "map a single-table customer snapshot (CSV) into "
                    "feature and label tables", "churn import-snapshot --spec local/specs/telco.yaml", common)
    i.add_argument("--spec", required=True, help="YAML spec: source, id, label{column, positive}, drop, ...")

    add_command(sub, "tables", cmd_tables, "rows, Delta version and partitioning of every lakehouse table",
                "churn tables", common)
    sc = add_command(sub, "score", cmd_score, "score every active customer of D with the champion -> "
                     "gold/customer_scores", "churn score --date 2026-03-01", common)
    sc.add_argument("--date", required=True, help="score date YYYY-MM-DD (its feature snapshot must exist)")
    j = add_command(sub, "jars", cmd_jars, "resolve Spark's JVM jars from Maven Central into the jar cache",
                    "churn jars fetch", common)
    j.add_argument("action", choices=["fetch"], help="fetch: resolve once (make setup does it)")
    j.add_argument("--force", action="store_true", help="resolve again even when the cache is complete")
    sg = add_command(sub, "spark-gateway", cmd_spark_gateway, "keep one warm Spark JVM that local-profile steps "
                     "attach to (CHURN_SPARK_GATEWAY=<file>); runs until stopped",
                     "CHURN_SPARK_GATEWAY=.churn/spark-gateway.json churn spark-gateway &", common)
    sg.add_argument("--file", help="where to write how to attach (default: CHURN_SPARK_GATEWAY or "
                    "<home>/spark-gateway.json)")
