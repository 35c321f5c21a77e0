"""Lakehouse benchmark: generate and build the lakehouse for 100k and 1M customers over 90 days.

    .venv/platform/bin/python benchmarks/lakehouse.py            # both sizes, 90 days (about 35 min)
    .venv/platform/bin/python benchmarks/lakehouse.py --sizes 20000 --days 7

Each size runs in a fresh process (its own JVM), over the same number of daily drops, and
reports for every step: wall time, rows per second (raw rows the step processed; for features,
feature rows written for the last day's snapshot) and the peak resident
memory of the whole process tree (Python driver + Spark JVM) while the step ran. The smaller size
is the baseline. The labels step is left out: within a few drops no label horizon closes, so it
would time an empty scan. The last table prints each figure of the larger size next to it, with the ratio,
so the growth of the cost is visible (linear growth would be a ratio of about 10 for time).
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

from _common import PeakRSS  # noqa: E402


def worker(customers: int, days: int, home: Path) -> dict:
    from churn.simulator import GeneratorConfig, generate
    from churn.core.settings import load_settings
    from spark_jobs.session import get_spark
    from spark_jobs import build_features, ingest, silver, validate

    mem = PeakRSS()
    start = dt.date(2026, 1, 1)
    end = start + dt.timedelta(days=days - 1)
    out: dict[str, dict] = {}

    def measure(name, fn, rows_of):
        mem.reset()
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
        rows = rows_of(result)
        out[name] = {"seconds": round(secs, 1), "rows": rows, "rows_per_s": round(rows / secs), "peak_rss_mb": round(mem.peak / 2**20)}
        print(f"  {customers:>9,} {name:9} {secs:8.1f}s {rows:>12,} rows {rows / secs:>12,.0f} rows/s "
              f"peak {mem.peak / 2**20:>7,.0f} MB", file=sys.stderr, flush=True)
        return result

    cfg = GeneratorConfig(customers=customers, start=start, days=days, seed=1, out=str(home / "raw"),
                          oracle_dir=str(home / "oracle"), defects=("nulls", "duplicates", "bad_dates"), defect_rate=0.002)
    manifest = measure("generate", lambda: generate(cfg), lambda m: sum(m.rows.values()))
    s = load_settings(env={"CHURN_HOME": str(home), "CHURN_SPARK_DRIVER_MEMORY": os.environ.get("BENCH_DRIVER_MEMORY", "8g"),
                           "CHURN_SPARK_SHUFFLE_PARTITIONS": "8", **({"CHURN_JARS_DIR": os.environ["CHURN_JARS_DIR"]}
                                                                     if "CHURN_JARS_DIR" in os.environ else {})})
    mem.reset()
    t0 = time.perf_counter()
    spark = get_spark(s, "bench-lakehouse")
    out["spark_start"] = {"seconds": round(time.perf_counter() - t0, 1)}
    raw_rows = sum(manifest.rows.values())
    measure("ingest", lambda: ingest.run(spark, s, start, end), lambda r: sum(r.rows.values()))
    measure("validate", lambda: validate.run(spark, s, start, end), lambda r: raw_rows)
    measure("silver", lambda: silver.run(spark, s, start, end), lambda r: raw_rows)
    snaps = [end]
    measure("features", lambda: build_features.run(spark, s, snaps), lambda r: sum(r.values()))
    spark.stop()
    mem.stop()
    return {"customers": customers, "days": days, "steps": out}


def main() -> int:
    from _common import add_json_argument, write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="customer counts, smallest first (the baseline)")
    ap.add_argument("--days", type=int, default=90,
                    help="daily drops per size; the features of the last day read all of them (90-day windows)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    add_json_argument(ap, "lakehouse")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.days, Path(args.home))))
        return 0
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"bench-lake-{n}-") as home:
            proc = subprocess.run([sys.executable, __file__, "--worker", str(n), "--days", str(args.days), "--home", home],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"size {n} failed", file=sys.stderr)
                return 1
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = results[0]
    print(f"\nlakehouse benchmark, {args.days} daily drops, {os.cpu_count()} cores "
          f"(baseline: {base['customers']:,} customers)")
    print(f"{'step':10}" + "".join(f"{r['customers']:>14,} cust  rows/s  peak MB" for r in results) + "   time ratio  mem ratio")
    for step in ("generate", "ingest", "validate", "silver", "features"):
        cells = "".join(f"{r['steps'][step]['seconds']:>12.1f}s {r['steps'][step]['rows_per_s']:>10,} {r['steps'][step]['peak_rss_mb']:>8,}"
                        for r in results)
        last = results[-1]["steps"][step]
        ratio = last["seconds"] / max(base["steps"][step]["seconds"], 0.1)
        mratio = last["peak_rss_mb"] / max(base["steps"][step]["peak_rss_mb"], 1)
        print(f"{step:10}{cells}   {ratio:>9.1f}x {mratio:>9.1f}x")
    print(f"{'spark start':10}" + "".join(f"{r['steps']['spark_start']['seconds']:>12.1f}s" + " " * 20 for r in results))
    Path(ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
