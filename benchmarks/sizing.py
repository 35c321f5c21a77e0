"""Size a cluster for a customer count from a measured nightly benchmark (benchmarks/nightly.py's JSON).

    .venv/platform/bin/python benchmarks/sizing.py                                  # 100M customers, 2 h
    .venv/platform/bin/python benchmarks/sizing.py --customers 50000000 --window-hours 1.5

For each step of the night, the two smallest-to-largest measured sizes give a line
``seconds = fixed + per_customer * customers`` (fixed: JVM start, commits, anything that does not
grow with the base). The per-customer part is work on the benchmark's cores; at the target size it
is spread over the cluster's cores with a parallel efficiency (default: what the standalone
cluster run measured against local[*] on the same cores, capped at 1). The night's steps run one
after another, so their times add up; the window keeps half of itself as headroom (a retry, a late
drop) unless told otherwise. Prints the cores that fit the night into the window, the executors
(of ``--executor-cores``) and their memory from the measured peak per core, and each step's time.
Publishing is not Spark: its time is the measured rows/s of COPY at the largest size.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "nightly.json"
SPARK_STEPS = ("ingest", "validate", "silver", "features", "labels", "score")


def fit(sizes: list[dict], step: str) -> tuple[float, float]:
    """(fixed seconds, seconds per customer on the benchmark's cores) of one step, from two sizes."""
    small, large = sizes[0], sizes[-1]
    t_small = small["night_local"]["steps"][step]["seconds"]
    t_large = large["night_local"]["steps"][step]["seconds"]
    if len(sizes) < 2 or large["customers"] == small["customers"]:
        return 0.0, t_large / large["customers"]
    per = max((t_large - t_small) / (large["customers"] - small["customers"]), 0.0)
    return max(t_large - per * large["customers"], 0.0), per


def plan(results: dict, customers: int, window_s: float, headroom: float, executor_cores: int,
         efficiency: float | None) -> dict:
    sizes = sorted(results["sizes"], key=lambda x: x["customers"])
    cores = results["cores"]
    largest = sizes[-1]
    if efficiency is None:
        cluster = next((x for x in sizes if "night_cluster" in x), None)
        if cluster:
            spark_local = sum(cluster["night_local"]["steps"][s]["seconds"] for s in SPARK_STEPS)
            spark_cluster = sum(cluster["night_cluster"]["steps"][s]["seconds"] for s in SPARK_STEPS)
            efficiency = min(1.0, spark_local / spark_cluster)
        else:
            efficiency = 0.7
    steps = {s: fit(sizes, s) for s in SPARK_STEPS}
    fixed = sum(a for a, _ in steps.values())
    core_seconds = sum(b * cores * customers for _, b in steps.values())  # the growing work, in core-seconds
    publish_rate = largest["publish"]["rows_per_s"]
    publish_s = customers / publish_rate
    budget = window_s * (1 - headroom) - fixed - publish_s
    if budget <= 0:
        raise SystemExit(f"the fixed costs ({fixed:.0f} s) and publishing ({publish_s:.0f} s) alone exceed the window")
    need = math.ceil(core_seconds / (budget * efficiency))
    executors = math.ceil(need / executor_cores)
    total_cores = executors * executor_cores
    per_core_mb = max(largest["night_local"]["steps"][s]["peak_rss_mb"]["total"] for s in SPARK_STEPS) / cores
    by_step = {s: round(a + b * cores * customers / (total_cores * efficiency)) for s, (a, b) in steps.items()}
    return {"customers": customers, "window_s": window_s, "headroom": headroom, "efficiency": round(efficiency, 2),
            "measured_at": [x["customers"] for x in sizes], "core_seconds": round(core_seconds),
            "cores": total_cores, "executors": executors, "executor_cores": executor_cores,
            "executor_memory_gb": math.ceil(per_core_mb * executor_cores / 1024),
            "shuffle_partitions": 3 * total_cores, "steps_s": by_step, "publish_s": round(publish_s),
            "night_s": round(sum(by_step.values()) + publish_s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(RESULTS), help="benchmarks/nightly.py's JSON (default: %(default)s)")
    ap.add_argument("--customers", type=int, default=100_000_000)
    ap.add_argument("--window-hours", type=float, default=2.0)
    ap.add_argument("--headroom", type=float, default=0.5, help="share of the window kept free (default 0.5)")
    ap.add_argument("--executor-cores", type=int, default=4)
    ap.add_argument("--efficiency", type=float, help="parallel efficiency on the cluster (default: measured)")
    args = ap.parse_args()
    path = Path(args.results)
    if not path.is_file():
        raise SystemExit(f"{path}: no nightly benchmark results; run benchmarks/nightly.py first")
    p = plan(json.loads(path.read_text()), args.customers, args.window_hours * 3600, args.headroom,
             args.executor_cores, args.efficiency)
    print(f"{p['customers']:,} customers in {args.window_hours:g} h ({p['headroom']:.0%} kept free), from the "
          f"nightly measured at {', '.join(format(c, ',') for c in p['measured_at'])} customers; "
          f"parallel efficiency {p['efficiency']:.2f}")
    print(f"  Spark work that grows with the base: {p['core_seconds']:,} core-seconds")
    print(f"  cores: {p['cores']} = {p['executors']} executors x {p['executor_cores']} cores, "
          f"{p['executor_memory_gb']} GB each; shuffle partitions {p['shuffle_partitions']}")
    for s, sec in p["steps_s"].items():
        print(f"    {s:10} {sec / 60:6.1f} min")
    print(f"    {'publish':10} {p['publish_s'] / 60:6.1f} min  (COPY at the measured rows/s)")
    print(f"  the night: {p['night_s'] / 60:.0f} min")
    print(json.dumps(p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
