"""Drift benchmark: the nightly monitor step on a 1M-customer night, next to Evidently on all rows.

    .venv/platform/bin/python benchmarks/drift.py                      # 1M customers (about 6 min)
    .venv/platform/bin/python benchmarks/drift.py --customers 200000   # a quick look

Set-up (timed, not a figure): weekly gold/customer_features and gold/labels synthesised with a known
churn process (delta-rs, as benchmarks/training.py does), a champion trained and registered on them
the platform's way (its drift reference stored with it), and one night of ``--customers`` customers
drawn from the same process with drift in a few features (a 10 % price rise, more support tickets,
a new payment method the model never saw), scored by the champion into gold/customer_scores.

Figures, all in this run:

1. the monitor step as the nightly runs it (``python -m ml.monitor --date D``, its own process: a seeded sample of
   ``drift_sample_rows`` read batch by batch from Delta, Evidently on it against the reference, the
   HTML + JSON report, rows into a throwaway PostgreSQL, the MLflow run): wall time and the peak RSS
   of that process; target at most 60 s on 2 cores;
2. the baseline: Evidently's DataDriftPreset on every row of the night against the same reference
   (the night read whole into pandas first, its read time included): wall time and the peak RSS of
   the benchmark's process while it runs (which also holds what the set-up left: an upper bound);
3. agreement: per column (every feature and the score), the sample's verdict against the verdict
   on all rows, for the step's own sample and two more seeds; the bound to prove is at least 95 %.
Writes benchmarks/results/drift.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import PeakRSS, synthetic_columns  # noqa: E402

SNAPSHOTS = 6
TRAIN_PER_SNAPSHOT = 20_000
D0 = dt.date(2026, 1, 4)
NIGHT = D0 + dt.timedelta(days=7 * SNAPSHOTS + 14)


def frame(n: int, rng, drift: bool = False):
    """Feature rows of the synthetic process; with ``drift``: prices up 10 %, tickets up, and a
    payment method the model never saw for 5 % of customers."""
    import numpy as np
    import pandas as pd

    cols = synthetic_columns(n, rng)
    if drift:
        cols["monthly_charges"] = cols["monthly_charges"] * 1.10
        cols["tickets_30d"] = cols["tickets_30d"] + rng.poisson(4.0, n)
        new = rng.random(n) < 0.05
        cols["payment_method"] = np.where(new, "Digital wallet", cols["payment_method"])
    return pd.DataFrame(cols)


def churn_labels(df, rng):
    import numpy as np

    z = (-4.0 + 1.2 * (df["contract"] == "Month-to-month") - 0.8 * (df["contract"] == "Two year")
         + 0.5 * (df["internet_service"] == "Fiber optic") + 0.03 * (df["monthly_charges"] - 20)
         - 0.02 * df["tenure_months"] + 0.04 * df["late_invoices_90d"] - 0.02 * df["sessions_30d"]
         + 0.3 * (df["payment_method"] == "Electronic check") * (df["tickets_30d"] > 25))
    return (rng.random(len(df)) < 1 / (1 + np.exp(-z))).astype("int32")


def schema():
    import pyarrow as pa

    from churn.core.feature_defs import FEATURES

    return pa.schema([("customer_id", pa.string()), ("snapshot_date", pa.date32())] + [
        (f.name, pa.string() if f.kind == "categorical" else pa.int32() if f.dtype == "int" else pa.float64())
        for f in FEATURES])


def set_up(home: Path, customers: int, settings) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from deltalake import write_deltalake

    from ml import train

    rng = np.random.default_rng(0)
    lake = Path(settings.lake_uri) / "gold"
    parts, labels = [], []
    for k in range(SNAPSHOTS):
        df = frame(TRAIN_PER_SNAPSHOT, rng)
        df.insert(0, "snapshot_date", D0 + dt.timedelta(days=7 * k))
        df.insert(0, "customer_id", [f"C{i:08d}" for i in range(TRAIN_PER_SNAPSHOT)])
        parts.append(df)
        labels.append(pd.DataFrame({"customer_id": df["customer_id"], "snapshot_date": df["snapshot_date"],
                                    "churned": churn_labels(df, rng)}))
    write_deltalake(str(lake / "customer_features"), pa.Table.from_pandas(pd.concat(parts), schema=schema(),
                                                                          preserve_index=False),
                    partition_by=["snapshot_date"])
    write_deltalake(str(lake / "labels"), pa.Table.from_pandas(pd.concat(labels), preserve_index=False),
                    partition_by=["snapshot_date"])
    result = train.run(settings)
    print(f"  champion: version {result['version']} ({result['decision']}), ROC-AUC {result['roc_auc']:.3f}",
          file=sys.stderr)
    from ml.registry import Registry

    model = Registry(settings).load(settings.model_name, "champion")
    chunk = 250_000
    for start in range(0, customers, chunk):  # the night, written in chunks (bounded memory)
        n = min(chunk, customers - start)
        night = frame(n, rng, drift=True)
        night.insert(0, "snapshot_date", NIGHT)
        night.insert(0, "customer_id", [f"C{i:08d}" for i in range(start, start + n)])
        write_deltalake(str(lake / "customer_features"), pa.Table.from_pandas(night, schema=schema(),
                                                                              preserve_index=False),
                        partition_by=["snapshot_date"], mode="append")
        scores = pd.DataFrame({"customer_id": night["customer_id"], "score_date": NIGHT,
                               "churn_probability": model.predict(night), "model_name": settings.model_name,
                               "model_version": result["version"]})
        write_deltalake(str(lake / "customer_scores"), pa.Table.from_pandas(scores, preserve_index=False),
                        partition_by=["score_date"], mode="append")


def main() -> int:
    from _common import add_json_argument, write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    add_json_argument(ap, "drift")
    args = ap.parse_args()

    from churn.core.settings import load_settings
    from churn.warehouse import db
    from churn.warehouse.server import Postgres
    from churn.core.net import free_port

    out: dict = {"customers": args.customers, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="churn-bench-drift-") as tmp:
        home = Path(tmp)
        pg = Postgres(home / "pg", free_port()).start()
        try:
            s = load_settings(env={"CHURN_HOME": str(home), "CHURN_LABEL_HORIZON_DAYS": "7",
                                   "CHURN_PG_URL": pg.url.rsplit("/", 1)[0] + "/postgres"})
            db.upgrade(s)
            t = time.perf_counter()
            set_up(home, args.customers, s)
            out["set_up_seconds"] = round(time.perf_counter() - t, 1)
            run(s, out)
        finally:
            pg.stop()
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    write_json(args.json, out)
    print(json.dumps(out, default=str))
    return 0


def run(s, out: dict) -> None:

    from churn.core.lake import delta_table
    from ml import monitor
    from ml.registry import Registry

    import subprocess

    mem = PeakRSS()
    # 1. the step, as the nightly runs it: its own process (interpreter start and imports included),
    # its memory alone
    child = PeakRSS(include_self=False)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ml.monitor", "--date", str(NIGHT)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **s.as_env()})
    if proc.returncode != 0:
        raise SystemExit(f"the monitor step failed:\n{proc.stderr[-3000:]}")
    step = json.loads(proc.stdout.strip().splitlines()[-1])
    child.stop()
    out["step"] = {"seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(child.peak / 2**20),
                   "sample_rows": step["rows_current"], "drifted_features": step["drifted_features"],
                   "drifted_importance": step["drifted_importance"], "retrain": step["retrain"]}
    registry = Registry(s)
    model = registry.load(s.model_name, step["model_version"])
    reference = monitor.load_reference(registry, s.model_name, step["model_version"])
    # 2. the baseline: Evidently on every row of the night
    mem.reset()
    t = time.perf_counter()
    features = delta_table(s, "gold", "customer_features").to_pandas(filters=[("snapshot_date", "=", NIGHT)])
    scores = delta_table(s, "gold", "customer_scores").to_pandas(columns=["customer_id", monitor.SCORE],
                                                                 filters=[("score_date", "=", NIGHT)])
    everything = features.merge(scores, on="customer_id")
    read = time.perf_counter() - t
    full = monitor.drift(reference, everything, model)
    out["evidently_all_rows"] = {"seconds": round(time.perf_counter() - t, 1), "read_seconds": round(read, 1),
                                 "peak_rss_mb": round(mem.peak / 2**20), "rows": len(everything),
                                 "drifted_features": sorted(c.feature for c in full.features if c.drifted)}
    del everything, features, scores
    # 3. agreement of the sample's verdicts with all rows', for the step's sample and two more seeds
    truth = {c.feature: c.drifted for c in full.columns}
    agreements = {}
    for seed in (None, 1, 2):
        if seed is None:
            verdicts = {c["feature"]: c["drifted"] for c in step["columns"]}
        else:
            sample, _ = monitor.night_sample(s, NIGHT, s.drift_sample_rows, seed=seed)
            verdicts = {c.feature: c.drifted for c in monitor.drift(reference, sample, model).columns}
        agree = sum(verdicts[f] == truth[f] for f in truth) / len(truth)
        agreements["step" if seed is None else f"seed {seed}"] = {
            "agreement": round(agree, 4), "disagree_on": sorted(f for f in truth if verdicts[f] != truth[f])}
    out["agreement"] = agreements
    mem.stop()
    worst = min(a["agreement"] for a in agreements.values())
    print(f"\nmonitor step, {out['customers']:,} customers on {out['cores']} cores (sample {s.drift_sample_rows:,} rows)")
    print(f"  {'':34} {'wall':>8} {'peak RSS':>10}")
    print(f"  {'the step (python -m ml.monitor)':34} {out['step']['seconds']:>7.1f}s "
          f"{out['step']['peak_rss_mb']:>8,} MB   target <= 60 s")
    print(f"  {'Evidently on all rows (baseline)':34} {out['evidently_all_rows']['seconds']:>7.1f}s "
          f"{out['evidently_all_rows']['peak_rss_mb']:>8,} MB")
    print("  verdicts agreeing with all rows': " + ", ".join(f"{k} {v['agreement']:.1%}" for k, v in agreements.items())
          + f"  (worst {worst:.1%}; bound >= 95 %)")
    print(f"  drifted on all rows: {', '.join(out['evidently_all_rows']['drifted_features'])}")


if __name__ == "__main__":
    raise SystemExit(main())
