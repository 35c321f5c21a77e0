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
    result = train.run(s, start, end, args.spec, args.seed, params, register=not args.no_register, tune=args.tune)
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
    if args.action == "performance":
        return _performance(args)
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
    print(f"{'time (UTC)':20} {'event':15} {'version':>7} {'champion':>8} {'until':20} reason")
    for _, r in hist.iterrows():
        until = "-" if pd_isna(r["champion_until"]) else f"{r['champion_until']:%Y-%m-%d %H:%M:%S}"
        what = f"night {r['night']}: {r['reason']}" if r["event"] == "retrain_request" else r["reason"]
        print(f"{r['time']:%Y-%m-%d %H:%M:%S}  {r['event']:15} {r['version']:>7} {r['champion_after'] or '-':>8} "
              f"{until:20} {what}")
        if r.get("trigger"):
            print(f"{'':22}{'':15} answering the retrain request of {r['trigger']}")
    versions = sorted({str(v) for v in hist["version"] if str(v).isdigit()}, key=int)
    cards = {v: reg.card_uri(name, v) for v in versions}
    if any(cards.values()):
        print("model cards:")
        for v, uri in cards.items():
            print(f"  version {v:>4}  {uri or '- (registered before model cards)'}")
    return 0


def _performance(args) -> int:
    """``churn models performance``: realized performance per score date and version, and its plot."""
    import io

    import pandas as pd

    from churn.core.pg import connect
    from churn.core.reports import write_report

    s = settings_of(args)
    with connect(s) as conn:
        rows = conn.execute("""SELECT score_date, model_name, model_version, rows, positives, roc_auc, pr_auc,
                                      lift_top_10, capture_top_10, calibration_error, evaluated_on
                               FROM churn.model_performance ORDER BY score_date, model_version""").fetchall()
    cols = ["score_date", "model", "version", "rows", "positives", "roc_auc", "pr_auc", "lift_top_10", "capture_top_10",
            "calibration_error", "evaluated_on"]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        print("no realized performance yet: a scored night is evaluated once its label horizon has closed "
              f"({s.label_horizon_days} days, CHURN_LABEL_HORIZON_DAYS)")
        return 0
    print(f"{'score date':10} {'model':>10} {'rows':>9} {'churned':>8} {'ROC-AUC':>8} {'PR-AUC':>7} {'lift@10%':>8} "
          f"{'capture':>8} {'ECE':>6}")
    for r in df.itertuples():
        print(f"{r.score_date} {r.model + ' v' + r.version:>10} {r.rows:>9,} {r.positives:>8,} {r.roc_auc:>8.3f} "
              f"{r.pr_auc:>7.3f} {r.lift_top_10:>8.2f} {r.capture_top_10:>8.1%} {r.calibration_error:>6.3f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (auc, ece) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for (model, version), part in df.groupby(["model", "version"]):
        auc.plot(part["score_date"], part["roc_auc"], marker="o", label=f"{model} v{version}")
        ece.plot(part["score_date"], part["calibration_error"], marker="o", label=f"{model} v{version}")
    auc.axhline(s.realized_min_roc_auc, color="red", linestyle="--", linewidth=1, label="retrain floor")
    auc.set_ylabel("realized ROC-AUC")
    ece.axhline(s.gate_max_calibration_error, color="red", linestyle="--", linewidth=1, label="gate's ECE ceiling")
    ece.set_ylabel("calibration error (ECE)")
    ece.set_xlabel("score date")
    auc.legend(loc="lower left")
    auc.set_title(f"Realized performance: scores against what happened within {s.label_horizon_days} days")
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"plot: {write_report(s, 'performance/model_performance.png', buf.getvalue())}")
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
    tr.add_argument("--tune", action="store_true", help="search XGBoost's parameters first (on the training rows only; "
                    "budget: CHURN_TUNE_TRIALS, CHURN_TUNE_SECONDS, CHURN_TUNE_SAMPLE_ROWS), then fit with the best")
    tr.add_argument("--json", action="store_true", help="print one JSON object with the metrics and the decision")
    tr.add_argument("--no-register", action="store_true", help="evaluate only: log nothing to MLflow")

    pr = add_command(sub, "promote", cmd_promote, "make a registered model version the champion (operator override)",
                     "churn promote --version 3 --reason 'approved by risk review'", common)
    pr.add_argument("--version", required=True, help="registered version number to promote")
    pr.add_argument("--reason", default="", help="why, recorded in the champion history")
    rb = add_command(sub, "rollback", cmd_rollback, "give the champion alias back to the previous champion",
                     "churn rollback --reason 'calibration drifted'", common)
    rb.add_argument("--reason", default="", help="why, recorded in the champion history")
    mo = add_command(sub, "models", cmd_models, "the registered model's champion history, or its realized performance",
                     "churn models history", common)
    mo.add_argument("action", choices=["history", "performance"],
                    help="history: which version was champion when, and why (and the retrain requests); "
                         "performance: realized ROC-AUC and calibration per score date, with a PNG")
    for sp in (pr, rb, mo):
        sp.add_argument("--model", help="registered model name (default: CHURN_MODEL_NAME)")
