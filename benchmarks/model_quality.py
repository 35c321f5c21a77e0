"""Model quality benchmark: the platform's tuned model against its defaults and a tuned reference.

    .venv/platform/bin/python benchmarks/model_quality.py              # Telco, 5 splits (about 20 min)
    .venv/platform/bin/python benchmarks/model_quality.py --splits 2 --trials 10

On IBM Telco (local/specs/telco.yaml), over ``--splits`` seeded stratified splits (seeds 1..N; the
split `churn train --spec` makes), three models per split, each judged on the same holdout:

* default: the platform's fixed parameters (ml/model.py TrainParams), early-stopped on its
  validation slice;
* tuned: the platform's tune step (ml/tune.py, the settings' budget unless --trials/--seconds),
  3-fold CV by customer on the training rows, then the refit `churn train --tune` does;
* reference: a 64-point grid over the same six parameters (two values each), every point scored
  by inner 4-fold stratified CV with early stopping on the held fold; the best point is refitted
  the same way as the others. What a careful practitioner would run by hand.

Target: the tuned model's mean holdout ROC-AUC at least the reference's minus 0.002. Tuning time is
printed beside the reference's. The test rows never enter either search.

Then, on a generated lakehouse (``--lake-customers``, default 50,000 customers over 70 days, weekly
snapshots, 14-day labels, built by the nightly's own steps on Spark ``local[*]``), the default and
the tuned model's out-of-time ROC-AUC against the oracle's (the generator's true churn
probabilities on the same test rows). Target: at least 0.98 of the oracle.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: The reference grid: two values for each tuned parameter, 2**6 = 64 points.
GRID = {"max_depth": (3, 5), "learning_rate": (0.03, 0.1), "min_child_weight": (1.0, 10.0), "subsample": (0.7, 1.0),
        "colsample_bytree": (0.5, 1.0), "reg_lambda": (1.0, 10.0)}
TARGET_GAP = 0.002


def reference_search(ts, base, seed: int) -> tuple[dict, float]:
    """The grid with inner 4-fold stratified CV and early stopping; returns (best point, seconds)."""
    import numpy as np
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from ml.dataset import LABEL
    from ml.model import Preprocessor
    from ml.tune import TRIAL_EARLY_STOPPING, search_rows

    t0 = time.time()
    rows = search_rows(ts)
    prep = Preprocessor.fit(rows, ts.features)
    x, y = prep.transform(rows, "reference rows"), rows[LABEL].to_numpy()
    folds = []
    for fit_at, score_at in StratifiedKFold(4, shuffle=True, random_state=seed).split(x, y):
        folds.append((xgb.QuantileDMatrix(x.iloc[fit_at], label=y[fit_at], enable_categorical=True, max_bin=base.max_bin),
                      xgb.DMatrix(x.iloc[score_at], label=y[score_at], enable_categorical=True), y[score_at]))
    best, best_auc = None, -1.0
    for values in itertools.product(*GRID.values()):
        point = dict(zip(GRID, values))
        params = replace(base, **point).xgb_params()
        aucs = []
        for dfit, dscore, yscore in folds:
            b = xgb.train(params, dfit, num_boost_round=base.num_boost_round, evals=[(dscore, "valid")],
                          early_stopping_rounds=TRIAL_EARLY_STOPPING, verbose_eval=False)
            aucs.append(roc_auc_score(yscore, b.predict(dscore, iteration_range=(0, b.best_iteration + 1))))
        if np.mean(aucs) > best_auc:
            best, best_auc = point, float(np.mean(aucs))
    return best, time.time() - t0


def one_split(seed: int, budget) -> dict:
    from churn.core.settings import load_settings
    from ml import train
    from ml.dataset import from_spec
    from ml.evaluate import evaluate
    from ml.model import TrainParams
    from ml.tune import tune

    s = load_settings(env={"CHURN_HOME": os.environ.get("CHURN_HOME", str(ROOT / ".churn"))})
    ts = from_spec(s, ROOT / "local/specs/telco.yaml", seed=seed)
    base = TrainParams(seed=seed)
    test = ts.part("test")

    def holdout(params, tuning=None):
        model = train.fit_model(ts, params, tuning)
        return evaluate(model, test)[0].metrics["roc_auc"]

    out = {"seed": seed, "n_test": len(test)}
    out["default"] = holdout(base)
    t0 = time.time()
    chosen, summary, _ = tune(ts, base, budget, seed)
    out["tune_seconds"] = round(time.time() - t0, 1)
    out["tuned"] = holdout(chosen, summary)
    out["tuned_source"] = summary["source"]
    out["tuned_params"] = summary["chosen"]
    point, secs = reference_search(ts, base, seed)
    out["reference_seconds"] = round(secs, 1)
    out["reference"] = holdout(replace(base, **point))
    out["reference_params"] = point
    print(f"  split seed {seed}: default {out['default']:.4f}  tuned {out['tuned']:.4f} ({out['tune_seconds']:.0f}s, "
          f"{summary['source']})  reference {out['reference']:.4f} ({secs:.0f}s)", file=sys.stderr, flush=True)
    return out


def lakehouse_quality(customers: int, budget, home: Path) -> dict:
    """Default and tuned models on a generated lakehouse, against the oracle on the same test rows."""
    import datetime as dt

    from churn.core.settings import load_settings
    from churn.runner import build_lakehouse
    from churn.simulator import GeneratorConfig, generate
    from ml import train
    from ml.model import TrainParams
    from spark_jobs.session import get_spark

    d0, days = dt.date(2026, 1, 1), 70
    t0 = time.time()
    generate(GeneratorConfig(customers=customers, start=d0, days=days, seed=11, out=str(home / "raw"),
                             oracle_dir=str(home / "oracle"), horizon=14))
    s = load_settings(env={"CHURN_HOME": str(home), "CHURN_LABEL_HORIZON_DAYS": "14"})
    spark = get_spark(s, "bench-model-quality")
    build_lakehouse(s, d0, d0 + dt.timedelta(days=days - 1), spark=spark, every=7)
    spark.stop()
    built = time.time() - t0
    ts = train.prepare(s)
    test = ts.part("test")
    out = {"customers": customers, "days": days, "build_seconds": round(built, 1), "n_train": ts.split["n_train"],
           "n_test": len(test)}
    for name, params, tuning in (("default", TrainParams(), None),
                                 ("tuned", *train.tune_params(ts, TrainParams(), budget, 42))):
        model = train.fit_model(ts, params, tuning)
        from ml.evaluate import evaluate, oracle_comparison

        auc = evaluate(model, test)[0].metrics["roc_auc"]
        oracle = oracle_comparison(s.oracle_dir, test, auc)
        out[name] = {"roc_auc": auc, "oracle_roc_auc": oracle["oracle_roc_auc"],
                     "share_of_oracle": oracle["auc_share_of_oracle"]}
        if tuning:
            out[name].update(tune_seconds=tuning["seconds"], source=tuning["source"])
    print(f"  lakehouse {customers:,} customers: default {out['default']['share_of_oracle']:.4f}, tuned "
          f"{out['tuned']['share_of_oracle']:.4f} of the oracle", file=sys.stderr, flush=True)
    return out


def main() -> int:
    import logging

    import numpy as np

    from _common import add_json_argument, write_json
    from churn.core.settings import load_settings
    from ml.tune import Budget

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", type=int, default=5, help="seeded splits (seeds 1..N)")
    ap.add_argument("--trials", type=int, help="tuning trials (default: the settings', CHURN_TUNE_TRIALS)")
    ap.add_argument("--seconds", type=float, help="tuning seconds (default: the settings', CHURN_TUNE_SECONDS)")
    ap.add_argument("--lake-customers", type=int, default=50_000,
                    help="customers of the generated lakehouse part (0: skip it)")
    add_json_argument(ap, "model_quality")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    budget = Budget.from_settings(load_settings())
    budget = budget.with_overrides({k: v for k, v in (("trials", args.trials), ("seconds", args.seconds)) if v is not None},
                                   "command line")
    rows = [one_split(seed, budget) for seed in range(1, args.splits + 1)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("default", "tuned", "reference", "tune_seconds",
                                                               "reference_seconds")}
    print(f"\nmodel quality on Telco, {args.splits} seeded stratified splits, holdout ROC-AUC "
          f"({os.cpu_count()} cores; tuning budget {budget.trials} trials / {budget.seconds:.0f}s)")
    print(f"{'split seed':>10} {'test rows':>9} | {'default':>8} {'tuned':>8} {'reference':>9} | "
          f"{'tune s':>7} {'reference s':>11} | tuned chose")
    for r in rows:
        print(f"{r['seed']:>10} {r['n_test']:>9} | {r['default']:>8.4f} {r['tuned']:>8.4f} {r['reference']:>9.4f} | "
              f"{r['tune_seconds']:>7.1f} {r['reference_seconds']:>11.1f} | {r['tuned_source']}")
    gap = mean["tuned"] - mean["reference"]
    print(f"{'mean':>10} {'':>9} | {mean['default']:>8.4f} {mean['tuned']:>8.4f} {mean['reference']:>9.4f} | "
          f"{mean['tune_seconds']:>7.1f} {mean['reference_seconds']:>11.1f} |")
    met = gap >= -TARGET_GAP
    print(f"tuned - reference = {gap:+.4f} (target >= -{TARGET_GAP}): {'met' if met else 'MISSED'}")
    lake = None
    if args.lake_customers:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-quality-") as home:
            lake = lakehouse_quality(args.lake_customers, budget, Path(home))
        print(f"\ngenerated lakehouse, {lake['customers']:,} customers x {lake['days']} days, out-of-time test "
              f"({lake['n_train']:,} training rows, {lake['n_test']:,} test rows; built in {lake['build_seconds']:.0f}s)")
        print(f"{'model':>8} {'ROC-AUC':>8} {'oracle':>8} {'share':>7} (target >= 0.98)")
        for name in ("default", "tuned"):
            r = lake[name]
            print(f"{name:>8} {r['roc_auc']:>8.4f} {r['oracle_roc_auc']:>8.4f} {r['share_of_oracle']:>7.4f}")
    write_json(args.json, {"splits": rows, "mean": mean, "tuned_minus_reference": gap, "target_met": met,
                           "budget": {"trials": budget.trials, "seconds": budget.seconds}, "lakehouse": lake})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
