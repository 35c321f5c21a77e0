"""Lakehouse benchmark: generate and build the lakehouse for 100k and 1M customers over 90 days.

    .venv/platform/bin/python benchmarks/lakehouse.py            # both sizes, 90 days (about 35 min)
    .venv/platform/bin/python benchmarks/lakehouse.py --sizes 20000 --days 7

Each size runs in a fresh process (its own JVM), over the same number of daily drops, and
reports for every step: wall time, rows per second (raw rows the step processed; for features,
feature rows written for the last day's snapshot) and the peak resident
memory of the whole process tree (Python driver + Spark JVM) while the step ran. The smaller size
is the baseline. The labels step is left out: within a few drops no label horizon closes, so it
would time an empty scan. The last table prints each size's figures side by side, with each size's
time and memory over the size before it, so the growth of the cost is visible (linear growth would
be a ratio of about 10 for time between sizes 10x apart).

``--replicate K`` adds one more point to the features curve, at K times the largest size, without
generating and building that history through the pipeline (at 10M customers x 90 days: about 957M
raw rows and hours of ingest, validate and silver on 2 cores). The largest size's silver tables
are copied K times with Spark, every ``*_id`` column of copy k prefixed ``R<k>-`` so that the
copies are distinct customers (with distinct invoices, tickets and plan changes) whose histories
are those of real generated ones, and the last drop's bronze/usage partition with them (the
features step checks that the day was ingested). Then, in a fresh process, the same features step
over the whole window. Only the features of that size are a figure; the copy is timed but is not
a pipeline step.

    .venv/platform/bin/python benchmarks/lakehouse.py --replicate 10      # 100k, 1M, and 10M features (about 70 min)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PeakRSS  # noqa: E402


START = dt.date(2026, 1, 1)  # the first daily drop of every size


def last_day(days: int) -> dt.date:
    return START + dt.timedelta(days=days - 1)


def lake_settings(home: Path):
    """Every process of the benchmark sees its lake the same way: driver heap 8g (``BENCH_DRIVER_MEMORY``), 8 shuffle partitions."""
    from churn.core.settings import load_settings

    return load_settings(env={"CHURN_HOME": str(home), "CHURN_SPARK_DRIVER_MEMORY": os.environ.get("BENCH_DRIVER_MEMORY", "8g"),
                              "CHURN_SPARK_SHUFFLE_PARTITIONS": "8", **({"CHURN_JARS_DIR": os.environ["CHURN_JARS_DIR"]}
                                                                        if "CHURN_JARS_DIR" in os.environ else {})})


def worker(customers: int, days: int, home: Path) -> dict:
    from churn.simulator import GeneratorConfig, generate
    from spark_jobs.session import get_spark
    from spark_jobs import build_features, ingest, silver, validate

    mem = PeakRSS()
    start, end = START, last_day(days)
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
    s = lake_settings(home)
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


def replicate(source_home: Path, factor: int, last: dt.date, home: Path) -> dict:
    """Copy ``source_home``'s silver tables (and ``last``'s bronze/usage partition) ``factor``
    times into ``home``'s lake, the ids of copy k prefixed ``R<k>-``."""
    from pyspark.sql import functions as F

    from churn.core.sources import SOURCES
    from spark_jobs.session import get_spark
    from spark_jobs.silver import PARTITIONS

    src, dst = lake_settings(source_home), lake_settings(home)
    spark = get_spark(dst, "bench-lakehouse-replicate")
    copies = F.broadcast(spark.range(factor).select(F.concat(F.lit("R"), F.col("id").cast("string"), F.lit("-")).alias("_copy")))

    def copied(df):
        df = df.crossJoin(copies)
        return df.select(*[F.concat("_copy", c).alias(c) if c.endswith("_id") else F.col(c) for c in df.columns if c != "_copy"])

    t0 = time.perf_counter()
    rows = {}
    tables = [("silver", name, None, PARTITIONS.get(name, [])) for name in SOURCES]
    tables.append(("bronze", "usage", f"ingest_date = DATE'{last}'", ["ingest_date"]))
    for layer, name, where, parts in tables:
        df = spark.read.format("delta").load(src.table_uri(layer, name))
        if where:
            df = df.where(where)
        copied(df).write.format("delta").partitionBy(*parts).save(dst.table_uri(layer, name))
        rows[f"{layer}/{name}"] = spark.read.format("delta").load(dst.table_uri(layer, name)).count()
        print(f"  replicated {layer}/{name} x{factor}: {rows[f'{layer}/{name}']:,} rows "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    spark.stop()
    secs = time.perf_counter() - t0
    return {"seconds": round(secs, 1), "rows": sum(rows.values()), "tables": rows}


def features_only(customers: int, days: int, home: Path, replicated_from: int, copy: dict) -> dict:
    """The features step alone, in this fresh process, over a lake :func:`replicate` wrote."""
    from spark_jobs import build_features
    from spark_jobs.session import get_spark

    end = last_day(days)
    s = lake_settings(home)
    mem = PeakRSS()
    t0 = time.perf_counter()
    spark = get_spark(s, "bench-lakehouse")
    steps = {"spark_start": {"seconds": round(time.perf_counter() - t0, 1)}}
    mem.reset()
    t0 = time.perf_counter()
    rows = sum(build_features.run(spark, s, [end]).values())
    secs = time.perf_counter() - t0
    steps["features"] = {"seconds": round(secs, 1), "rows": rows, "rows_per_s": round(rows / secs),
                         "peak_rss_mb": round(mem.peak / 2**20)}
    print(f"  {customers:>9,} features  {secs:8.1f}s {rows:>12,} rows {rows / secs:>12,.0f} rows/s "
          f"peak {mem.peak / 2**20:>7,.0f} MB", file=sys.stderr, flush=True)
    spark.stop()
    mem.stop()
    return {"customers": customers, "days": days, "replicated_from": replicated_from, "replicate": copy, "steps": steps}


def main() -> int:
    from _common import add_json_argument, write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="customer counts, smallest first (the baseline)")
    ap.add_argument("--days", type=int, default=90,
                    help="daily drops per size; the features of the last day read all of them (90-day windows)")
    ap.add_argument("--replicate", type=int, metavar="K",
                    help="also time the features of K x the largest size, on its silver tables copied K times")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--replicate-from", help=argparse.SUPPRESS)
    ap.add_argument("--copied", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    add_json_argument(ap, "lakehouse")
    args = ap.parse_args()
    if args.worker and args.copied:  # the features of a copied lake, in a fresh process
        copied = json.loads(args.copied)
        print(json.dumps(features_only(args.worker, args.days, Path(args.home), copied["from"], copied)))
        return 0
    if args.worker and args.replicate_from:
        print(json.dumps(replicate(Path(args.replicate_from), args.replicate, last_day(args.days), Path(args.home))))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.days, Path(args.home))))
        return 0
    sizes = [int(x) for x in args.sizes.split(",")]

    def child(*argv: str) -> dict | None:
        proc = subprocess.run([sys.executable, __file__, "--days", str(args.days), *argv], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
        for n in sizes:
            home = Path(tmp) / str(n)
            results.append(child("--worker", str(n), "--home", str(home)))
            if results[-1] is None:
                print(f"size {n} failed", file=sys.stderr)
                return 1
            if n != sizes[-1] or not args.replicate:
                shutil.rmtree(home)
        if args.replicate:
            big = sizes[-1] * args.replicate
            home = Path(tmp) / str(big)
            copy = child("--worker", str(big), "--replicate", str(args.replicate), "--replicate-from", str(Path(tmp) / str(sizes[-1])),
                         "--home", str(home))
            shutil.rmtree(Path(tmp) / str(sizes[-1]))
            if copy is not None:
                results.append(child("--worker", str(big), "--copied", json.dumps({**copy, "from": sizes[-1]}),
                                     "--home", str(home)))
            if copy is None or results[-1] is None:
                print(f"size {big} (replicated) failed", file=sys.stderr)
                return 1
    report(results, args.days)
    write_json(args.json, results)
    return 0


def report(results: list[dict], days: int) -> None:
    """Each size's steps side by side, then each size's time and memory over the previous size's."""
    print(f"\nlakehouse benchmark, {days} daily drops, {os.cpu_count()} cores; ratios: each size over the one before")
    names = [f"{r['customers']:,}" + (" (copied)" if "replicated_from" in r else "") for r in results]
    print(f"{'step':11}" + "".join(f"{n:>24}   rows/s  peak MB" for n in names)
          + "".join(f"{'time, mem':>16}" for _ in results[1:]))
    for step in ("generate", "ingest", "validate", "silver", "features", "spark_start"):
        cells, ratios = "", ""
        for i, r in enumerate(results):
            m = r["steps"].get(step)
            if m is None:
                cells += f"{'-':>24} {'':>8} {'':>8}"
            else:
                rates = f"{m['rows_per_s']:>8,} {m['peak_rss_mb']:>8,}" if "rows_per_s" in m else " " * 17
                cells += f"{m['seconds']:>23.1f}s {rates}"
            prev = results[i - 1]["steps"].get(step) if i else None
            if i and m is not None and prev is not None and "peak_rss_mb" in m:
                ratios += f"{m['seconds'] / max(prev['seconds'], 0.1):>8.1f}x {m['peak_rss_mb'] / max(prev['peak_rss_mb'], 1):>5.1f}x"
            elif i:
                ratios += f"{'':>16}"
        print(f"{step:11}{cells}{ratios}")
    for r in results:
        if "replicate" in r:
            c = r["replicate"]
            print(f"{r['customers']:,} customers: the {r['replicated_from']:,}-customer silver tables copied "
                  f"{r['customers'] // r['replicated_from']}x, {c['rows']:,} rows in {c['seconds']:.0f} s (not a pipeline step)")


if __name__ == "__main__":
    raise SystemExit(main())
