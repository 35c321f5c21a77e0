"""``churn train | promote | rollback | models``: the model lifecycle (MLflow registry, champion gate)."""

from __future__ import annotations

import json

from churn.cli import add_command, settings_of
from churn.core.errors import InputError


def cmd_train(args) -> int:
    from ml import train
    from ml.model import TrainParams
    from churn.core.dates import check_not_future, parse_date

    s = settings_of(args)
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

    s = settings_of(args)
    entry = Registry(s).promote(args.model or s.model_name, str(args.version), args.reason)
    print(f"{entry['model']}: champion is now version {entry['version']} (was {entry['previous_champion'] or '-'})")
    return 0


def cmd_rollback(args) -> int:
    from ml.registry import Registry

    s = settings_of(args)
    entry = Registry(s).rollback(args.model or s.model_name, args.reason)
    print(f"{entry['model']}: champion rolled back to version {entry['version']} (was {entry['previous_champion']})")
    return 0


def cmd_models(args) -> int:
    from ml.registry import CHALLENGER, CHAMPION, Registry

    s = settings_of(args)
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


def register(sub, common) -> None:
    tr = add_command(sub, "train", cmd_train, "train, evaluate, register and gate a churn model",
                     "churn train --start 2026-01-01 --end 2026-03-01", common)
    tr.add_argument("--start", help="first snapshot date of the training window (default: the first labelled)")
    tr.add_argument("--end", help="last snapshot date (default: the newest labelled); the newest is the test set")
    tr.add_argument("--spec", help="train on a single-table snapshot through this YAML spec instead")
    tr.add_argument("--seed", type=int, default=42, help="random seed of the split and the model")
    tr.add_argument("--param", action="append", help="XGBoost setting NAME=VALUE (e.g. max_depth=4), repeatable")
    tr.add_argument("--json", action="store_true", help="print one JSON object with the metrics and the decision")
    tr.add_argument("--no-register", action="store_true", help="evaluate only: log nothing to MLflow")

    pr = add_command(sub, "promote", cmd_promote, "make a registered model version the champion (operator override)",
                     "churn promote --version 3 --reason 'approved by risk review'", common)
    pr.add_argument("--version", required=True, help="registered version number to promote")
    pr.add_argument("--reason", default="", help="why, recorded in the champion history")
    rb = add_command(sub, "rollback", cmd_rollback, "give the champion alias back to the previous champion",
                     "churn rollback --reason 'calibration drifted'", common)
    rb.add_argument("--reason", default="", help="why, recorded in the champion history")
    mo = add_command(sub, "models", cmd_models, "the registered model's aliases and champion history",
                     "churn models history", common)
    mo.add_argument("action", choices=["history"], help="history: which version was champion when, and why")
    for sp in (pr, rb, mo):
        sp.add_argument("--model", help="registered model name (default: CHURN_MODEL_NAME)")
