"""Nightly benchmark: score and publish a 1M-customer base, each figure next to its baseline.

    .venv/platform/bin/python benchmarks/nightly.py                     # 1M customers (about 25 min)
    .venv/platform/bin/python benchmarks/nightly.py --customers 100000  # a quick look

Set-up (timed, but not a figure): a small generated lakehouse (20k customers, 28 days, 7-day
labels) trains the champion; the large base is generated for two days and the first day is built
as history. Then, all in the same run:

1. end to end: ``churn nightly --date D`` as its own process (JVM start included) for the second
   day: ingest -> validate -> silver -> features -> labels -> score -> publish; wall time and the
   peak resident memory of the driver (Python), the JVM (driver + local executors) and the Python
   workers (mapInPandas), sampled every 0.2 s.
2. scoring throughput: ``spark_jobs.score.run`` (Delta features -> probabilities, deciles, bands,
   top-3 reasons -> Delta) in a warm SparkSession, against the ceiling: bare ``xgboost`` doing the
   same work on the same rows in this one process (delta-rs read, predict + contributions, top 3,
   delta-rs write). The reasons' cost: probabilities alone vs exact SHAP (``pred_contribs``) vs
   approximate (Saabas, ``approx_contribs``), compute only.
3. publish throughput: ``churn.publish.publish`` (delta-rs read -> reasons as columns -> parallel
   COPY into the day's new table -> reconcile + primary key -> partition swap) against a bare
   single-connection ``COPY FROM STDIN`` of the same rows, already in memory, into a plain table
   (the ceiling) and pandas ``to_sql`` of them (what a tutorial does; timed on a 100k-row sample,
   its rows/s stated as such).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

D0 = dt.date(2026, 3, 1)
D1 = D0 + dt.timedelta(days=1)


class PeakByRole:
    """Peak RSS of a process tree, split into the Python driver, the JVM and Python workers."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.peak = {"driver": 0, "jvm": 0, "workers": 0, "total": 0}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            now = {"driver": 0, "jvm": 0, "workers": 0}
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    role = "driver" if p.pid == self.root.pid else "jvm" if "java" in p.name() else "workers"
                    now[role] += rss
                except psutil.Error:
                    pass
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            self.peak["total"] = max(self.peak["total"], sum(now.values()))
            time.sleep(0.2)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        return {k: round(v / 2**20) for k, v in self.peak.items()}


def settings_for(home: Path, **extra):
    from churn.core.settings import load_settings

    env = {"CHURN_HOME": str(home), "CHURN_SPARK_DRIVER_MEMORY": os.environ.get("BENCH_DRIVER_MEMORY", "8g"),
           "CHURN_SPARK_SHUFFLE_PARTITIONS": "8", "CHURN_LABEL_HORIZON_DAYS": "7"}
    if "CHURN_JARS_DIR" in os.environ:
        env["CHURN_JARS_DIR"] = os.environ["CHURN_JARS_DIR"]
    env.update({f"CHURN_{k.upper()}": str(v) for k, v in extra.items()})
    return load_settings(env=env), env


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bare_scoring(s, descriptions: dict[str, str]) -> dict:
    """The ceiling: the same rows, read, scored with reasons and written, in one process without Spark."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from deltalake import write_deltalake

    from churn.core.lake import delta_table
    from ml.registry import Registry

    model = Registry(s).load(s.model_name, "champion")
    feats = model.feature_names
    t0 = time.perf_counter()
    frame = delta_table(s, "gold", "customer_features").to_pandas(
        columns=["customer_id", *feats], filters=[("snapshot_date", "=", D1)])
    t_read = time.perf_counter() - t0
    x = model.prep.transform(frame)
    dm = xgb.DMatrix(x, enable_categorical=True)
    _, t_prob = timed(lambda: model.booster.inplace_predict(x, validate_features=False))
    approx, t_approx = timed(lambda: model.booster.predict(dm, pred_contribs=True, approx_contribs=True))
    del approx
    t1 = time.perf_counter()
    contrib = model.booster.predict(dm, pred_contribs=True)
    t_exact = time.perf_counter() - t1
    values = contrib[:, :-1]
    prob = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1)))
    top = np.argsort(-values, axis=1, kind="stable")[:, :3]
    raw = frame[feats]
    reasons = []
    for i in range(len(frame)):  # the output rows: up to 3 positive contributions each
        row = []
        for j in top[i]:
            c = float(values[i, j])
            if c <= 0:
                break
            v = raw.iat[i, j]
            row.append({"feature": feats[j], "description": descriptions.get(feats[j], feats[j]),
                        "value": None if pd.isna(v) else str(v), "contribution": round(c, 6)})
        reasons.append(row)
    order = (-prob).argsort()
    decile = np.empty(len(prob), dtype="int32")
    decile[order] = np.minimum(np.arange(len(prob)) * 10 // len(prob) + 1, 10)
    out = pd.DataFrame({"customer_id": frame["customer_id"], "score_date": D1, "churn_probability": prob,
                        "risk_decile": decile, "reasons": reasons})
    t_compute = time.perf_counter() - t0 - t_read
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        write_deltalake(tmp, out, mode="overwrite")
        t_write = time.perf_counter() - t2
    return {"rows": len(frame), "seconds": time.perf_counter() - t0 - t_prob - t_approx, "read": t_read,
            "compute": t_compute - t_prob - t_approx, "write": t_write,
            "prob_only": t_prob, "exact_contribs": t_exact, "approx_contribs": t_approx}


def publish_baselines(s, pg_url: str, sample: int) -> dict:
    """The same rows as publish loads, already in memory (Arrow, reasons as columns, every column of
    the row): a bare single-connection ``COPY FROM STDIN`` of them into a plain table (the ceiling:
    no Delta read, no index, no swap) and pandas ``to_sql`` of a sample (what a tutorial does)."""
    import pyarrow as pa
    import psycopg
    import sqlalchemy

    from churn.warehouse.publish import _csv, _day, flatten_reasons

    meta, dataset, flt = _day(s, D1)
    parts = [flatten_reasons(b)[0] for b in dataset.to_batches(columns=["customer_id", "churn_probability", "risk_decile",
                                                                        "risk_band", "reasons"], filter=flt)]
    rows = pa.concat_tables(parts)
    n = rows.num_rows
    for name, value in [("score_date", pa.array([D1] * n, pa.date32())), *[(k, pa.array([v] * n)) for k, v in meta["model"].items()],
                        ("scoring_run_id", pa.array(["00000000-0000-0000-0000-000000000000"] * n))]:
        rows = rows.append_column(name, value)
    reasons = ", ".join(f"reason_{k}_feature text, reason_{k}_value text, reason_{k}_contribution double precision"
                        for k in (1, 2, 3))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS bench_copy (customer_id text, churn_probability double precision, "
                     f"risk_decile smallint, risk_band text, {reasons}, score_date date, model_name text, "
                     f"model_version text, model_run_id text, scoring_run_id uuid)")
        conn.execute("TRUNCATE bench_copy")
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY bench_copy ({', '.join(rows.column_names)}) FROM STDIN (FORMAT csv)") as cp:
            for batch in rows.to_batches(max_chunksize=100_000):
                cp.write(_csv(batch))
        t_copy = time.perf_counter() - t0
    engine = sqlalchemy.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    part = rows.slice(0, sample).to_pandas()
    t0 = time.perf_counter()
    part.to_sql("bench_to_sql", engine, if_exists="replace", index=False)  # as a tutorial does: its own table
    t_to_sql = time.perf_counter() - t0
    engine.dispose()
    return {"rows": n, "copy_seconds": t_copy, "to_sql_rows": len(part), "to_sql_seconds": t_to_sql}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--to-sql-sample", type=int, default=100_000)
    ap.add_argument("--home", help="keep the benchmark's state here (default: a temporary folder)")
    args = ap.parse_args()
    from churn.core.feature_defs import FEATURES
    from churn.core.logs import setup as setup_logs
    from churn.core.net import free_port
    from churn.runner import build_lakehouse
    from churn.simulator import GeneratorConfig, generate
    from churn.warehouse.publish import publish
    from churn.warehouse.server import Postgres
    from ml import train
    from spark_jobs import score
    from spark_jobs.session import get_spark

    setup_logs()
    tmp = tempfile.TemporaryDirectory(prefix="bench-nightly-")
    base = Path(args.home or tmp.name)
    n = args.customers
    pg = Postgres(base / "pg", free_port()).start()
    try:
        import psycopg

        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE churn")
        pg_url = pg.url.rsplit("/", 1)[0] + "/churn"

        say("set-up: a champion trained on a small generated lakehouse (20k customers, 28 days)")
        small = base / "train"
        generate(GeneratorConfig(customers=20_000, start=D0, days=28, seed=3, out=str(small / "raw"),
                                 oracle_dir=str(small / "oracle"), horizon=7))
        s_small, _ = settings_for(small)
        spark = get_spark(s_small, "bench-nightly")
        build_lakehouse(s_small, D0, D0 + dt.timedelta(days=27), spark=spark, every=7)
        trained = train.run(s_small)
        assert trained["decision"] == "promoted", trained

        say(f"set-up: {n:,} customers, two daily drops; {D0} built as history")
        big = base / "big"
        generate(GeneratorConfig(customers=n, start=D0, days=2, seed=1, out=str(big / "raw"), oracle_dir=str(big / "oracle")))
        s, env = settings_for(big, mlflow_uri=s_small.mlflow_tracking_uri, pg_url=pg_url)
        build_lakehouse(s, D0, D0, spark=spark)

        say(f"1/3 end to end: churn nightly --date {D1} ({n:,} customers) as its own process")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "churn", "nightly", "--date", str(D1)],
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}, **env,
                                     "CHURN_MLFLOW_URI": s.mlflow_uri, "CHURN_PG_URL": pg_url},
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        mem = PeakByRole(proc.pid)
        stdout, _ = proc.communicate()
        e2e_seconds = time.perf_counter() - t0
        peaks = mem.stop()
        if proc.returncode != 0:
            say("churn nightly failed")
            return 1
        nightly = json.loads(stdout.strip().splitlines()[-1])

        say("2/3 scoring: the platform's Spark job in a warm session, then bare xgboost on the same rows")
        scored, t_spark = timed(lambda: score.run(spark, s, D1))
        descriptions = {f.name: f.description for f in FEATURES}
        spark.stop()  # the ceiling gets both cores to itself
        bare = bare_scoring(s, descriptions)

        say("3/3 publishing: churn publish, bare COPY FROM STDIN, pandas to_sql")
        published, t_publish = timed(lambda: publish(s, D1))
        base_pub = publish_baselines(s, pg_url, args.to_sql_sample)
    finally:
        pg.stop()
        tmp.cleanup()

    rows = scored["rows"]
    spark_rps = rows / t_spark
    bare_rps = bare["rows"] / bare["seconds"]
    pub_rps = published["rows"] / t_publish
    copy_rps = base_pub["rows"] / base_pub["copy_seconds"]
    to_sql_rps = base_pub["to_sql_rows"] / base_pub["to_sql_seconds"]
    results = {
        "customers": n, "cores": os.cpu_count(), "scored_rows": rows,
        "end_to_end": {"seconds": round(e2e_seconds, 1), "nightly": nightly, "peak_rss_mb": peaks},
        "scoring": {"spark_seconds": round(t_spark, 1), "spark_rows_per_s": round(spark_rps),
                    "bare_seconds": round(bare["seconds"], 1), "bare_rows_per_s": round(bare_rps),
                    "ratio": round(spark_rps / bare_rps, 3),
                    "bare_breakdown_s": {k: round(bare[k], 2) for k in ("read", "compute", "write")},
                    "compute_only_s": {k: round(bare[k], 2) for k in ("prob_only", "approx_contribs", "exact_contribs")}},
        "publish": {"seconds": round(t_publish, 1), "rows_per_s": round(pub_rps),
                    "bare_copy_seconds": round(base_pub["copy_seconds"], 1), "bare_copy_rows_per_s": round(copy_rps),
                    "to_sql_rows": base_pub["to_sql_rows"], "to_sql_seconds": round(base_pub["to_sql_seconds"], 1),
                    "to_sql_rows_per_s": round(to_sql_rps),
                    "vs_copy": round(pub_rps / copy_rps, 3), "vs_to_sql": round(pub_rps / to_sql_rps, 1)},
    }
    c = results["scoring"]["compute_only_s"]
    print(f"\nnightly benchmark: {n:,} customers, {rows:,} scored, {os.cpu_count()} cores")
    print(f"{'figure':44} {'ours':>14} {'baseline':>16} {'ratio':>8}  target")
    print(f"{'scoring rows/s (Spark, warm session)':44} {spark_rps:>14,.0f} {bare_rps:>12,.0f} bare {spark_rps / bare_rps:>7.0%}  >= 35 % of bare xgboost")
    print(f"{'  reasons (compute only, bare)':44} {'exact SHAP ' + format(c['exact_contribs'], '.1f') + ' s':>14} "
          f"{'prob ' + format(c['prob_only'], '.1f') + ' s':>16} {c['exact_contribs'] / max(c['prob_only'], 1e-9):>7.0f}x  "
          f"(approx/Saabas {c['approx_contribs']:.1f} s)")
    print(f"{'publish rows/s (COPY + swap)':44} {pub_rps:>14,.0f} {copy_rps:>11,.0f} COPY {pub_rps / copy_rps:>7.0%}  >= 70 % of bare COPY")
    print(f"{'':44} {'':>14} {to_sql_rps:>9,.0f} to_sql {pub_rps / to_sql_rps:>7.1f}x  >= 10x to_sql "
          f"({base_pub['to_sql_rows']:,}-row sample)")
    print(f"{'end-to-end nightly (own process, JVM incl.)':44} {e2e_seconds:>13.1f}s")
    print(f"{'peak RSS MB: driver / JVM / workers / total':44} {peaks['driver']:>6,} / {peaks['jvm']:,} / "
          f"{peaks['workers']:,} / {peaks['total']:,}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "nightly.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
