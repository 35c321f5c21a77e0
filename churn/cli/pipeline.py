"""``churn nightly`` (the declared nightly pipeline in one process) and ``churn pipeline`` (the
Kubeflow training pipeline: compile, run locally, submit)."""

from __future__ import annotations

import json
import time

from churn.cli import add_command, settings_of
from churn.core.errors import InputError


def cmd_nightly(args) -> int:
    """Every step of the nightly pipeline for D, in order, in one process (no Airflow)."""
    from churn.core.dates import check_not_future, parse_date
    from churn.runner import run_pipeline

    d = parse_date(args.date)
    check_not_future(d)
    t0 = time.time()
    # the first declared step is the database migration: an unreachable PostgreSQL fails before any Spark work
    results = run_pipeline(settings_of(args), d, force=args.force)
    scored, published = results["score"], results["publish"]
    print(json.dumps({"date": str(d), "scored": scored["rows"], "published": published["rows"],
                      "model": scored["model"], "version": scored["version"], "seconds": round(time.time() - t0, 1)}))
    return 0


def cmd_pipeline(args) -> int:
    from ml.pipelines import training

    s = settings_of(args)
    arguments = {"start": args.start, "end": args.end, "spec": args.spec, "seed": args.seed}
    if args.tune:
        arguments["tune"] = True
    if args.action == "compile":
        print(training.compile_pipeline(args.out, s.platform_image))
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


def register(sub, common) -> None:
    ni = add_command(sub, "nightly", cmd_nightly, "run the whole nightly pipeline for D in one process, without "
                     "Airflow: db_upgrade, wait_for_drops, ingest .. labels, score, publish", "churn nightly --date 2026-03-01", common)
    ni.add_argument("--date", required=True, help="logical date YYYY-MM-DD (the night's data)")
    ni.add_argument("--force", action="store_true", help="run even if drops of earlier dates were never ingested "
                    "(a night out of order; rerun it once they are)")

    pl = add_command(sub, "pipeline", cmd_pipeline, "the Kubeflow training pipeline: compile it, run it locally, or "
                     "submit it to a KFP endpoint and wait", "churn pipeline run-local --start 2026-01-01 --end 2026-03-01",
                     common)
    pl.add_argument("action", choices=["compile", "run-local", "submit"],
                    help="compile: write the YAML; run-local: kfp's local runner; submit: to --host and wait")
    pl.add_argument("--out", default="churn_training_pipeline.yaml", help="compile: where to write the YAML")
    pl.add_argument("--host", help="submit: KFP API endpoint (default: CHURN_KFP_HOST)")
    pl.add_argument("--start", default="", help="first snapshot date of the training window (default: the first labelled)")
    pl.add_argument("--end", default="", help="last snapshot date (default: the newest labelled)")
    pl.add_argument("--spec", default="", help="train on a single-table snapshot through this YAML spec instead")
    pl.add_argument("--seed", type=int, default=42, help="random seed of the split and the model")
    pl.add_argument("--tune", action="store_true", help="run the pipeline's tune step (budget: CHURN_TUNE_*)")
    pl.add_argument("--timeout", type=float, default=3600, help="submit: seconds to wait for the run")
    pl.add_argument("--experiment", default="churn-training", help="submit: KFP experiment name")
    pl.add_argument("--poll", type=float, default=10.0, help="submit: seconds between status checks")
