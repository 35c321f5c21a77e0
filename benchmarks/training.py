"""Training benchmark: `churn train`'s path on 100k and 1M customer-snapshots.

    .venv/platform/bin/python benchmarks/training.py                 # both sizes (about 5 min)
    .venv/platform/bin/python benchmarks/training.py --sizes 50000

Each size runs in a fresh process. The gold tables (``gold/customer_features`` with every column
of ``churn.features.FEATURES``, and ``gold/labels``) are synthesised with a known churn process and
written as Delta tables (delta-rs), 10 weekly snapshots; training then runs exactly as
``churn train`` does (read at pinned versions, leakage check, out-of-time split, fit with early
stopping, evaluation with plots, MLflow log + register + gate on a local SQLite store).

Figures per size: wall time of each step, fit rows/s, peak RSS of the process during the fit,
and two baselines measured in the same run:

* bare XGBoost: ``xgb.train`` on the same matrix, same parameters and rounds, no platform code;
* MLflow the default way: ``mlflow.pyfunc.log_model`` of the same model letting MLflow infer the
  signature and the pip requirements (what took about 12 s here), next to the platform's way
  (declared signature, pinned requirements).

Tuning (``churn train --tune``'s path, ml/tune.py) with the default budget (CHURN_TUNE_*: 40
trials, 480 s, a 200k-row sample of whole customers): the search, then the refit on every
training row, against the ceiling of 10 minutes for both together.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PeakRSS, synthetic_columns  # noqa: E402

SNAPSHOTS = 10
D0 = dt.date(2026, 1, 4)


def synthesise(rows: int, home: Path, seed: int = 0) -> None:
    """gold/customer_features + gold/labels with a known logistic churn process (7-day horizon)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from deltalake import write_deltalake

    from churn.core.feature_defs import FEATURES

    rng = np.random.default_rng(seed)
    per = rows // SNAPSHOTS
    n = per * SNAPSHOTS
    cols: dict[str, np.ndarray] = {
        "customer_id": np.tile(np.array([f"C{i:08d}" for i in range(per)]), SNAPSHOTS),
        "snapshot_date": np.repeat([D0 + dt.timedelta(days=7 * k) for k in range(SNAPSHOTS)], per),
        **synthetic_columns(n, rng),
    }
    z = (-4.0 + 1.2 * (cols["contract"] == "Month-to-month") - 0.8 * (cols["contract"] == "Two year")
         + 0.5 * (cols["internet_service"] == "Fiber optic") + 0.03 * (cols["monthly_charges"] - 20)
         - 0.02 * cols["tenure_months"] + 0.04 * cols["late_invoices_90d"] - 0.02 * cols["sessions_30d"]
         + 0.3 * (cols["payment_method"] == "Electronic check") * (cols["tickets_30d"] > 25))
    churned = (rng.random(n) < 1 / (1 + np.exp(-z))).astype("int32")
    features = pd.DataFrame(cols)
    schema = pa.schema([("customer_id", pa.string()), ("snapshot_date", pa.date32())] + [
        (f.name, pa.string() if f.kind == "categorical" else pa.int32() if f.dtype == "int" else pa.float64())
        for f in FEATURES])
    lake = home / "lake" / "gold"
    write_deltalake(str(lake / "customer_features"), pa.Table.from_pandas(features, schema=schema, preserve_index=False),
                    partition_by=["snapshot_date"])
    labels = pd.DataFrame({"customer_id": cols["customer_id"], "snapshot_date": cols["snapshot_date"], "churned": churned})
    write_deltalake(str(lake / "labels"), pa.Table.from_pandas(labels, preserve_index=False), partition_by=["snapshot_date"])


def worker(rows: int, home: Path) -> dict:
    import mlflow
    import xgboost as xgb

    from churn.core.settings import load_settings
    from ml import train
    from ml.dataset import LABEL
    from ml.model import TrainParams
    from ml.registry import ChurnPyfunc, Registry

    out: dict[str, dict] = {}
    t0 = time.perf_counter()
    synthesise(rows, home)
    out["synthesise"] = {"seconds": round(time.perf_counter() - t0, 1)}
    env = {"CHURN_HOME": str(home), "CHURN_LABEL_HORIZON_DAYS": "7"}
    s = load_settings(env=env)
    mem = PeakRSS()

    def step(name, fn):
        mem.reset()
        t = time.perf_counter()
        result = fn()
        out[name] = {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(mem.peak / 2**20)}
        print(f"  {rows:>9,} {name:18} {out[name]['seconds']:8.2f}s  peak {out[name]['peak_rss_mb']:>7,} MB",
              file=sys.stderr, flush=True)
        return result

    registry = step("mlflow_connect", lambda: Registry(s))
    ts = step("prepare", lambda: train.prepare(s))
    params = TrainParams()
    model = step("fit", lambda: train.fit_model(ts, params))
    n_train = ts.split["n_train"]
    out["fit"]["rows"] = n_train
    out["fit"]["rows_per_s"] = round(n_train / out["fit"]["seconds"])
    out["fit"]["best_iteration"] = model.info["best_iteration"]
    out["fit"]["rounds_run"] = model.info["rounds_run"]
    folder = train.output_dir(s, ts.name)
    ev = step("evaluate", lambda: train.evaluate_model(s, ts, model, folder))
    result = step("register_and_gate", lambda: train.register_and_gate(s, ts, model, ev, folder, registry))
    out["register_and_gate"]["mlflow_log_register"] = result["mlflow_seconds"]
    out["metrics"] = {k: round(ev.metrics[k], 4) for k in ("roc_auc", "pr_auc", "log_loss", "calibration_error")}

    from ml.tune import Budget

    budget = Budget.from_settings(s)
    chosen, tuning = step("tune", lambda: train.tune_params(ts, params, budget, 42, registry))
    tuned = step("refit_tuned", lambda: train.fit_model(ts, chosen, tuning))
    out["tune"].update({k: tuning.get(k) for k in ("trials", "completed", "pruned", "rows", "best_auc", "default_auc",
                                                   "source", "chosen")})
    out["tune_and_refit_seconds"] = round(out["tune"]["seconds"] + out["refit_tuned"]["seconds"], 1)
    out["tuned_metrics"] = {k: round(v, 4) for k, v in train.evaluate(tuned, ts.part("test"))[0].metrics.items()
                            if k in ("roc_auc", "pr_auc", "log_loss", "calibration_error")}

    # baseline 1: bare xgboost, same rows, same parameters, same number of rounds as the platform ran
    train_rows, valid_rows = ts.part("train"), ts.part("valid")
    xt = model.prep.transform(train_rows)
    xv = model.prep.transform(valid_rows)

    def bare():
        dtrain = xgb.DMatrix(xt, label=train_rows[LABEL].to_numpy(), enable_categorical=True)
        dvalid = xgb.DMatrix(xv, label=valid_rows[LABEL].to_numpy(), enable_categorical=True)
        return xgb.train(params.xgb_params(), dtrain, num_boost_round=model.info["rounds_run"],
                         evals=[(dtrain, "train"), (dvalid, "valid")], verbose_eval=False)

    step("bare_xgboost_fit", bare)
    out["bare_xgboost_fit"]["rows_per_s"] = round(n_train / out["bare_xgboost_fit"]["seconds"])

    # baseline 2: the default MLflow logging (signature and requirements inferred) of the same model
    def default_logging():
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=registry.experiment_id("bench-default")):
            saved = model.save(Path(tmp) / "churn_model")
            mlflow.pyfunc.log_model(name="model", python_model=ChurnPyfunc(), artifacts={"churn_model": str(saved)},
                                    input_example=ts.part("test")[model.feature_names].head(5),
                                    registered_model_name="bench-default")

    step("mlflow_default_log_register", default_logging)
    mem.stop()
    return {"rows": rows, "steps": out}


def main() -> int:
    from _common import add_json_argument, write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="customer-snapshots, smallest first")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    add_json_argument(ap, "training")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.home))))
        return 0
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix=f"bench-train-{n}-") as home:
            proc = subprocess.run([sys.executable, __file__, "--worker", str(n), "--home", home], stdout=subprocess.PIPE,
                                  text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"size {n} failed", file=sys.stderr)
                return 1
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"\ntraining benchmark, {os.cpu_count()} cores, {SNAPSHOTS} weekly snapshots, 7-day horizon")
    print(f"{'customer-snapshots':>18} {'train rows':>10} {'fit s':>7} {'rows/s':>9} {'peak MB':>8} | "
          f"{'bare xgb s':>10} {'rows/s':>9} {'platform/bare':>13} | {'prepare s':>9} {'eval s':>7} "
          f"{'MLflow ours s':>13} {'MLflow default s':>16} | ROC-AUC")
    for r in results:
        st = r["steps"]
        fit, bare = st["fit"], st["bare_xgboost_fit"]
        print(f"{r['rows']:>18,} {fit['rows']:>10,} {fit['seconds']:>7.1f} {fit['rows_per_s']:>9,} {fit['peak_rss_mb']:>8,} | "
              f"{bare['seconds']:>10.1f} {bare['rows_per_s']:>9,} {fit['seconds'] / bare['seconds']:>12.2f}x | "
              f"{st['prepare']['seconds']:>9.1f} {st['evaluate']['seconds']:>7.1f} "
              f"{st['register_and_gate']['mlflow_log_register']:>13.1f} {st['mlflow_default_log_register']['seconds']:>16.1f} | "
              f"{st['metrics']['roc_auc']:.4f}")
    print(f"\ntuning ({'default budget'}): search on a sample of whole customers, refit on all training rows")
    print(f"{'customer-snapshots':>18} {'trials':>6} {'pruned':>6} {'sample':>8} {'search s':>8} {'refit s':>7} "
          f"{'total s':>7} {'ceiling s':>9} | {'inner AUC':>9} {'defaults':>8} | holdout ROC-AUC default -> tuned")
    for r in results:
        st = r["steps"]
        tu = st["tune"]
        print(f"{r['rows']:>18,} {tu['trials']:>6} {tu['pruned']:>6} {tu['rows']:>8,} {tu['seconds']:>8.1f} "
              f"{st['refit_tuned']['seconds']:>7.1f} {st['tune_and_refit_seconds']:>7.1f} {600:>9} | "
              f"{tu['best_auc']:>9.4f} {tu['default_auc'] or float('nan'):>8.4f} | "
              f"{st['metrics']['roc_auc']:.4f} -> {st['tuned_metrics']['roc_auc']:.4f}")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
