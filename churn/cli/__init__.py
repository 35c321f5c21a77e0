"""The ``churn`` command line. Every subcommand exits non-zero on failure with a one-line reason."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from churn import logs
from churn.errors import ChurnError, ConfigError, InputError

log = logging.getLogger("churn")


def _settings(args):
    from churn.settings import load_settings

    return load_settings(getattr(args, "config", None))


def cmd_generate(args) -> int:
    from churn.generate import DEFECT_KINDS, GeneratorConfig, generate
    from spark_jobs.common import parse_date

    s = _settings(args)
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
    )
    if "://" in cfg.out:
        raise InputError(f"--out {cfg.out}: the generator writes to a local folder (raw exports land there)")
    last = [0.0]

    def progress(ci, nchunks, day, days, secs):
        if time.time() - last[0] > 2 or (ci == nchunks - 1 and day == days - 1):
            last[0] = time.time()
            done = (ci * days + day + 1) / (nchunks * days)
            print(f"\rgenerate: chunk {ci + 1}/{nchunks}, day {day + 1}/{days} ({done:.0%}, {secs:.0f}s)",
                  end="", file=sys.stderr, flush=True)

    m = generate(cfg, progress=progress)
    print(file=sys.stderr)
    print(json.dumps({"out": cfg.out, "rows": dict(m.rows), "customers_total": m.customers_total,
                      "churned": m.churned, "defects": dict(m.defects)}, indent=1))
    return 0


def cmd_run(args) -> int:
    from churn.spark import get_spark
    from spark_jobs.common import check_not_future, dates_from_args
    from spark_jobs.pipeline import parse_steps, run_steps

    start, end = dates_from_args(args)
    check_not_future(end)
    steps = parse_steps(args.steps)
    s = _settings(args)
    spark = get_spark(s, "churn-run")
    t0 = time.time()
    run_steps(spark, s, start, end, steps, args.every)
    log.info("run %s..%s (%s) finished in %.1fs", start, end, ",".join(steps), time.time() - t0)
    return 0


def cmd_import_snapshot(args) -> int:
    from churn.spark import get_spark
    from spark_jobs import import_snapshot

    s = _settings(args)
    spec = import_snapshot.load_spec(args.spec)
    spark = get_spark(s, "churn-import-snapshot")
    result = import_snapshot.run(spark, s, spec)
    print(json.dumps(result, indent=1, default=str))
    return 0


def cmd_tables(args) -> int:
    """Row counts of every lakehouse table (what `make demo` prints)."""
    from churn.spark import get_spark
    from spark_jobs.common import is_delta

    s = _settings(args)
    spark = get_spark(s, "churn-tables")
    from churn.sources import SOURCES

    tables = [("bronze", n) for n in SOURCES] + [("quarantine", "rejected_rows")] + \
             [("silver", n) for n in SOURCES] + [("gold", "customer_features"), ("gold", "labels")]
    print(f"{'table':36} {'rows':>12} {'version':>8}  partitions")
    for layer, name in tables:
        uri = s.table_uri(layer, name)
        if not is_delta(spark, uri):
            print(f"{layer + '/' + name:36} {'-':>12} {'-':>8}  (not built)")
            continue
        from delta.tables import DeltaTable

        dt_ = DeltaTable.forPath(spark, uri)
        detail = dt_.detail().select("numFiles", "partitionColumns").first()
        version = dt_.history(1).select("version").first()[0]
        n = spark.read.format("delta").load(uri).count()
        print(f"{layer + '/' + name:36} {n:>12,} {version:>8}  {','.join(detail['partitionColumns']) or '-'}")
    return 0


def cmd_train(args) -> int:
    from ml import train
    from ml.model import TrainParams
    from spark_jobs.common import check_not_future, parse_date

    s = _settings(args)
    if args.spec and (args.start or args.end):
        raise InputError("--spec trains on a single-table snapshot: it takes no --start/--end")
    start = parse_date(args.start, "--start") if args.start else None
    end = parse_date(args.end, "--end") if args.end else None
    if end:
        check_not_future(end)
    overrides = dict(kv.split("=", 1) for kv in args.param or [] if "=" in kv)
    if len(overrides) != len(args.param or []):
        raise InputError(f"--param expects NAME=VALUE, got {args.param}")
    params = TrainParams.from_overrides({**overrides, "seed": args.seed})
    result = train.run(s, start, end, args.spec, args.seed, params, register=not args.no_register)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_training(result)
    return 0


def _print_training(r: dict) -> None:
    print(f"ROC-AUC {r['roc_auc']:.4f}  PR-AUC {r['pr_auc']:.4f}  log loss {r['log_loss']:.4f}  "
          f"Brier {r['brier']:.4f}  calibration error {r['calibration_error']:.4f}")
    print(f"lift top 10% {r['lift_top_10']:.2f}x (captures {r['capture_top_10']:.1%} of churners)   "
          f"rows: train {r['n_train']:,}  valid {r['n_valid']:,}  test {r['n_test']:,}")
    if "auc_share_of_oracle" in r:
        print(f"oracle ROC-AUC {r['oracle_roc_auc']:.4f}: the model reaches {r['auc_share_of_oracle']:.1%} of it")
    if "version" in r:
        print(f"MLflow: {r['model']} version {r['version']} (run {r['run_id']}): {r['decision']}; "
              f"champion is version {r['champion'] or '-'}")
        for reason in r["reasons"]:
            print(f"  - {reason}")
    print(f"report: {r['report']}")


def cmd_promote(args) -> int:
    from ml.registry import Registry

    s = _settings(args)
    entry = Registry(s).promote(args.model or s.model_name, str(args.version), args.reason)
    print(f"{entry['model']}: champion is now version {entry['version']} (was {entry['previous_champion'] or '-'})")
    return 0


def cmd_rollback(args) -> int:
    from ml.registry import Registry

    s = _settings(args)
    entry = Registry(s).rollback(args.model or s.model_name, args.reason)
    print(f"{entry['model']}: champion rolled back to version {entry['version']} (was {entry['previous_champion']})")
    return 0


def cmd_models(args) -> int:
    from ml.registry import CHALLENGER, CHAMPION, Registry

    s = _settings(args)
    name = args.model or s.model_name
    reg = Registry(s)
    hist = reg.history(name)
    print(f"model {name}: champion {reg.alias_version(name, CHAMPION) or '-'}, "
          f"challenger {reg.alias_version(name, CHALLENGER) or '-'}")
    if hist.empty:
        print("no champion changes recorded yet")
        return 0
    print(f"{'time (UTC)':20} {'event':9} {'version':>7} {'champion':>8} {'until':20} reason")
    for _, r in hist.iterrows():
        until = "-" if pd_isna(r["champion_until"]) else f"{r['champion_until']:%Y-%m-%d %H:%M:%S}"
        print(f"{r['time']:%Y-%m-%d %H:%M:%S}  {r['event']:9} {r['version']:>7} {r['champion_after'] or '-':>8} "
              f"{until:20} {r['reason']}")
    return 0


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def cmd_db(args) -> int:
    from churn import db

    settings = _settings(args)
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
        running = db.local_server(settings).is_running()
        print(json.dumps({"running": running, "url": db.local_url(settings)}))
        return 0 if running else 3
    return 0


def _one_date(args):
    from spark_jobs.common import check_not_future, parse_date

    d = parse_date(args.date, "--date")
    check_not_future(d)
    return d


def cmd_score(args) -> int:
    from churn.spark import get_spark
    from spark_jobs import score

    d = _one_date(args)
    s = _settings(args)
    print(json.dumps(score.run(get_spark(s, "churn-score"), s, d), default=str))
    return 0


def cmd_publish(args) -> int:
    from churn.publish import publish

    d = _one_date(args)
    print(json.dumps(publish(_settings(args), d), default=str))
    return 0


def cmd_nightly(args) -> int:
    """Every step for D in order, in one process, without Airflow (scripts and debugging)."""
    from churn import db
    from churn.publish import publish
    from churn.spark import get_spark
    from spark_jobs import score
    from spark_jobs.pipeline import STEPS, run_steps

    d = _one_date(args)
    s = _settings(args)
    t0 = time.time()
    db.upgrade(s)  # fail before any Spark work when PostgreSQL is unreachable
    spark = get_spark(s, "churn-nightly")
    run_steps(spark, s, d, d, list(STEPS))
    log.info("[6/7] score %s", d)
    scored = score.run(spark, s, d)
    log.info("[7/7] publish %s", d)
    published = publish(s, d)
    print(json.dumps({"date": str(d), "scored": scored["rows"], "published": published["rows"],
                      "model": scored["model"], "version": scored["version"], "seconds": round(time.time() - t0, 1)}))
    return 0


def cmd_jars(args) -> int:
    from churn import jars

    paths = jars.fetch(_settings(args), force=args.force)
    print("\n".join(paths))
    return 0


def cmd_spark_gateway(args) -> int:
    from churn.spark import serve_gateway

    settings = _settings(args)
    path = Path(args.file or settings.spark_gateway or Path(settings.home) / "spark-gateway.json")
    serve_gateway(settings, path.resolve())
    return 0


def cmd_serve(args) -> int:
    from ml.serving.server import serve

    return serve(_settings(args), port=args.port, poll_seconds=args.poll_seconds)


def cmd_settings(args) -> int:
    print(json.dumps(_settings(args).as_dict(), indent=1, default=str))
    return 0


def cmd_pipeline(args) -> int:
    from ml.pipelines import training

    s = _settings(args)
    arguments = {"start": args.start, "end": args.end, "spec": args.spec, "seed": args.seed}
    if args.action == "compile":
        path = training.compile_pipeline(args.out, s.platform_image)
        print(path)
        return 0
    if args.action == "run-local":
        print(json.dumps(training.run_local(arguments, s), indent=1, default=str))
        return 0
    from ml.pipelines import submit

    host = args.host or s.kfp_host
    if not host:
        raise InputError("submit needs a Kubeflow Pipelines endpoint: --host or CHURN_KFP_HOST")
    outcome = submit.submit_and_wait(host, arguments, s.platform_image, args.timeout, args.experiment, args.poll)
    print(json.dumps(outcome, indent=1, default=str))
    return 0 if outcome["state"] == "SUCCEEDED" else 1


def build_parser() -> argparse.ArgumentParser:
    from churn.generate import DRIFT_KINDS

    p = argparse.ArgumentParser(prog="churn", description="Churn prediction platform")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a customer base's daily raw exports")
    g.add_argument("--customers", type=int, required=True)
    g.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    g.add_argument("--days", type=int, required=True)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", help="raw zone folder (default: CHURN_RAW_URI, i.e. $CHURN_HOME/raw)")
    g.add_argument("--drift", choices=DRIFT_KINDS, help="a drift event from --drift-date on")
    g.add_argument("--drift-date")
    g.add_argument("--defects", help="comma list of nulls,duplicates,bad_dates,unknown_categories,late_rows,"
                                     "future_dates, or 'all'")
    g.add_argument("--defect-rate", type=float, default=0.01, help="share of rows each defect hits")
    g.add_argument("--no-oracle", action="store_true", help="skip the true-probability side table")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run lakehouse steps for a date or a date range")
    r.add_argument("--date")
    r.add_argument("--start")
    r.add_argument("--end")
    r.add_argument("--every", type=int, default=1, help="feature snapshot every N days of a range")
    r.add_argument("--steps", help="comma list of ingest,validate,silver,features,labels (default: all)")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("import-snapshot", help="map a single-table customer snapshot (CSV) into features + labels")
    i.add_argument("--spec", required=True, help="YAML spec: source, id, label{column, positive}, drop, ...")
    i.set_defaults(func=cmd_import_snapshot)

    t = sub.add_parser("tables", help="row counts and versions of the lakehouse tables")
    t.set_defaults(func=cmd_tables)

    j = sub.add_parser("jars", help="resolve Spark's JVM jars from Maven Central into the jar cache")
    j.add_argument("action", choices=["fetch"])
    j.add_argument("--force", action="store_true")
    j.set_defaults(func=cmd_jars)

    sg = sub.add_parser("spark-gateway", help="keep one warm Spark JVM that local-profile steps attach to "
                        "(CHURN_SPARK_GATEWAY=<file>); runs until stopped")
    sg.add_argument("--file", help="where to write how to attach (default: CHURN_SPARK_GATEWAY or <home>/spark-gateway.json)")
    sg.set_defaults(func=cmd_spark_gateway)

    st = sub.add_parser("settings", help="print the effective settings (secrets redacted)")
    st.set_defaults(func=cmd_settings)

    tr = sub.add_parser("train", help="train, evaluate, register and gate a churn model")
    tr.add_argument("--start", help="first snapshot date of the training window (default: the first labelled)")
    tr.add_argument("--end", help="last snapshot date (default: the newest labelled); the newest is the test set")
    tr.add_argument("--spec", help="train on a single-table snapshot through this YAML spec instead")
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--param", action="append", help="XGBoost setting NAME=VALUE (e.g. max_depth=4), repeatable")
    tr.add_argument("--json", action="store_true", help="print one JSON object with the metrics and the decision")
    tr.add_argument("--no-register", action="store_true", help="evaluate only: log nothing to MLflow")
    tr.set_defaults(func=cmd_train)

    pr = sub.add_parser("promote", help="make a registered model version the champion (operator override)")
    pr.add_argument("--version", required=True)
    pr.add_argument("--reason", default="")
    pr.set_defaults(func=cmd_promote)
    rb = sub.add_parser("rollback", help="give the champion alias back to the previous champion")
    rb.add_argument("--reason", default="")
    rb.set_defaults(func=cmd_rollback)
    mo = sub.add_parser("models", help="the registered model's aliases and champion history")
    mo.add_argument("action", choices=["history"])
    mo.set_defaults(func=cmd_models)
    for sp in (pr, rb, mo):
        sp.add_argument("--model", help="registered model name (default: CHURN_MODEL_NAME)")

    dbp = sub.add_parser("db", help="PostgreSQL of the published scores: apply migrations; start/stop/status "
                         "of the local server under CHURN_HOME (used when CHURN_PG_URL is unset)")
    dbp.add_argument("action", choices=["upgrade", "start", "stop", "status"])
    dbp.set_defaults(func=cmd_db)
    sc = sub.add_parser("score", help="score every active customer of D with the champion -> gold/customer_scores")
    sc.add_argument("--date", required=True)
    sc.set_defaults(func=cmd_score)
    pu = sub.add_parser("publish", help="publish D's scores to PostgreSQL (COPY + atomic swap)")
    pu.add_argument("--date", required=True)
    pu.set_defaults(func=cmd_publish)
    ni = sub.add_parser("nightly", help="ingest -> ... -> labels -> score -> publish for D, without Airflow")
    ni.add_argument("--date", required=True)
    ni.set_defaults(func=cmd_nightly)

    sv = sub.add_parser("serve", help="the online predictor (KServe, v1 and v2 protocols) on a local port")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--poll-seconds", type=float, default=30.0, help="how often to check the champion alias")
    sv.set_defaults(func=cmd_serve)
    pl = sub.add_parser("pipeline", help="the Kubeflow training pipeline: compile, run locally, submit")
    pl.add_argument("action", choices=["compile", "run-local", "submit"])
    pl.add_argument("--out", default="churn_training_pipeline.yaml", help="compile: where to write the YAML")
    pl.add_argument("--host", help="submit: KFP API endpoint (default: CHURN_KFP_HOST)")
    pl.add_argument("--start", default="")
    pl.add_argument("--end", default="")
    pl.add_argument("--spec", default="")
    pl.add_argument("--seed", type=int, default=42)
    pl.add_argument("--timeout", type=float, default=3600, help="submit: seconds to wait for the run")
    pl.add_argument("--experiment", default="churn-training")
    pl.add_argument("--poll", type=float, default=10.0, help="submit: seconds between status checks")
    pl.set_defaults(func=cmd_pipeline)
    for sp in (g, r, i, t, j, st, tr, pr, rb, mo, pl, dbp, sc, pu, ni):
        sp.add_argument("--config", help="settings YAML (else CHURN_CONFIG and CHURN_* variables)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    try:
        return args.func(args)
    except ChurnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
