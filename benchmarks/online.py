"""Online benchmark: `churn serve` answering single-customer requests, next to KServe serving the bare model.

    .venv/platform/bin/python benchmarks/online.py             # about 6 min
    .venv/platform/bin/python benchmarks/online.py --requests 500

Set-up (timed, not a figure): a small generated lakehouse (20k customers, 28 days, 7-day labels)
trains the champion; the last day is scored and published to a throwaway PostgreSQL (online
features included). Then, in the same run, on loopback:

- ours: `churn serve` (KServe ModelServer, one worker): v1 ``predict`` by customer id, so each
  request looks the features up in PostgreSQL and returns probability, band and top-3 reasons;
- baseline: KServe's ModelServer serving the same booster bare: the request carries the feature
  vector, the answer is the probability (no lookup, no reasons).

Each: p50 / p99 latency of sequential requests, then throughput with 4 and 8 concurrent clients
(keep-alive connections), customers drawn at random from the published night.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

D0 = dt.date(2026, 3, 1)
DAYS = 28
NIGHT = D0 + dt.timedelta(days=DAYS - 1)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: dict) -> dict:
        self.conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data)


def sequential(port: int, path: str, bodies: list[dict]) -> dict:
    client = Client(port)
    for body in bodies[:20]:  # warm-up
        client.post(path, body)
    times = []
    for body in bodies:
        t0 = time.perf_counter()
        client.post(path, body)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p99_ms": 1000 * times[int(len(times) * 0.99) - 1],
            "n": len(times)}


def concurrent(port: int, path: str, bodies: list[dict], clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def work(k: int) -> None:
        client = Client(port)
        i = k
        while time.perf_counter() < stop:
            client.post(path, bodies[i % len(bodies)])
            done[k] += 1
            i += clients

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def wait_ready(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v2/models/churn/ready")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on {port} never became ready: {log.read_text()[-2000:]}")


def bare_server(port: int, model_dir: str) -> None:
    """The baseline: KServe's ModelServer with the booster alone (features in, probability out)."""
    import pandas as pd
    from kserve import Model, ModelServer

    from ml.model import ChurnModel

    class Bare(Model):
        def load(self):
            self.model = ChurnModel.load(model_dir)
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            frame = pd.DataFrame(payload["instances"])
            return {"predictions": self.model.predict(frame).tolist()}

    m = Bare("churn")
    m.load()
    ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False).start([m])  # as churn serve


def setup(s, base: Path) -> None:
    """A champion trained on a small generated lakehouse; its last day scored and published."""
    from churn.runner import build_lakehouse, run_pipeline
    from churn.simulator import GeneratorConfig, generate
    from ml import train
    from ml.registry import Registry
    from spark_jobs.session import get_spark

    say(f"set-up: 20k customers, {DAYS} days, champion, {NIGHT} scored and published")
    generate(GeneratorConfig(customers=20_000, start=D0, days=DAYS, seed=3, out=s.raw_uri,
                             oracle_dir=str(base / "home" / "oracle"), horizon=7))
    spark = get_spark(s, "bench-online")
    build_lakehouse(s, D0, NIGHT, spark=spark, every=7)
    assert train.run(s)["decision"] == "promoted"
    run_pipeline(s, NIGHT, steps=["db_upgrade", "score", "publish"], spark=spark)  # the nightly's own steps
    spark.stop()
    Registry(s).load(s.model_name, "champion").save(base / "model")
    (base / "ready").write_text("set-up complete\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per server")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each concurrent run")
    ap.add_argument("--work", help="keep the set-up in this folder and reuse it on the next run (default: a "
                                   "temporary folder, removed)")
    ap.add_argument("--bare-server", nargs=2, metavar=("PORT", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        bare_server(int(args.bare_server[0]), args.bare_server[1])
        return 0
    import psycopg
    from deltalake import DeltaTable

    from churn.core.logs import setup as setup_logs
    from churn.core.net import free_port
    from churn.core.settings import load_settings
    from churn.warehouse.server import Postgres
    from ml.registry import Registry

    setup_logs()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench-online-")
    base = Path(args.work or tmp.name).resolve()
    reuse = (base / "ready").exists()
    pg = Postgres(base / "pg", free_port()).start()
    procs: list[subprocess.Popen] = []
    try:
        env = {"CHURN_HOME": str(base / "home"), "CHURN_LABEL_HORIZON_DAYS": "7", "CHURN_SPARK_SHUFFLE_PARTITIONS": "8",
               "CHURN_PG_URL": pg.url.rsplit("/", 1)[0] + "/churn"}
        if "CHURN_JARS_DIR" in os.environ:
            env["CHURN_JARS_DIR"] = os.environ["CHURN_JARS_DIR"]
        s = load_settings(env=env)
        if reuse:
            say(f"set-up: reusing {base}")
        else:
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE churn")
            setup(s, base)
        model_dir = base / "model"
        features = DeltaTable(s.table_uri("gold", "customer_features")).to_pandas(
            filters=[("snapshot_date", "=", NIGHT)])
        ids = features["customer_id"].tolist()
        random.Random(1).shuffle(ids)
        names = Registry(s).load(s.model_name, "champion").feature_names
        vectors = features.set_index("customer_id")[names]
        ours_bodies = [{"instances": [{"customer_id": c}]} for c in ids[: args.requests]]
        bare_bodies = [{"instances": [json.loads(vectors.loc[c].to_json())]} for c in ids[: args.requests]]

        ours_port, bare_port = free_port(), free_port()
        full_env = {**os.environ, **env}
        for cmd, port, name in (
                ([sys.executable, "-m", "churn", "serve", "--port", str(ours_port)], ours_port, "ours"),
                ([sys.executable, __file__, "--bare-server", str(bare_port), str(model_dir)], bare_port, "bare")):
            log = base / f"{name}.log"
            procs.append(subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT))
            wait_ready(port, procs[-1], log)

        results = {}
        for name, port, path, bodies in (("ours", ours_port, "/v1/models/churn:predict", ours_bodies),
                                         ("bare", bare_port, "/v1/models/churn:predict", bare_bodies)):
            say(f"{name}: {len(bodies)} sequential requests, then 4 and 8 concurrent clients")
            r = sequential(port, path, bodies)
            r["rps_4"] = concurrent(port, path, bodies, 4, args.seconds)
            r["rps_8"] = concurrent(port, path, bodies, 8, args.seconds)
            results[name] = r
        c = http.client.HTTPConnection("127.0.0.1", ours_port, timeout=10)
        c.request("GET", "/metrics")
        metrics = dict(line.rsplit(" ", 1) for line in c.getresponse().read().decode().splitlines()
                       if line.startswith("churn_feature_lookup_seconds_"))
        results["ours"]["lookup_mean_ms"] = 1000 * float(metrics["churn_feature_lookup_seconds_sum"]) / float(
            metrics["churn_feature_lookup_seconds_count"])
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        pg.stop()
        if tmp is not None:
            tmp.cleanup()

    ours, bare = results["ours"], results["bare"]
    print(f"\nonline benchmark: single-customer requests on loopback, {os.cpu_count()} cores, one server worker")
    print(f"{'figure':38} {'ours':>10} {'bare model':>11} {'ratio':>7}  target")
    print(f"{'p50 latency, sequential (ms)':38} {ours['p50_ms']:>10.2f} {bare['p50_ms']:>11.2f} "
          f"{ours['p50_ms'] / bare['p50_ms']:>6.2f}x")
    print(f"{'p99 latency, sequential (ms)':38} {ours['p99_ms']:>10.2f} {bare['p99_ms']:>11.2f} "
          f"{ours['p99_ms'] / bare['p99_ms']:>6.2f}x  ours <= 10 ms")
    print(f"{'  of which PostgreSQL lookup, mean (ms)':38} {ours['lookup_mean_ms']:>10.2f} {'-':>11}")
    for k in (4, 8):
        print(f"{f'throughput, {k} concurrent clients (req/s)':38} {ours[f'rps_{k}']:>10,.0f} {bare[f'rps_{k}']:>11,.0f} "
              f"{ours[f'rps_{k}'] / bare[f'rps_{k}']:>7.0%}  >= 70 % of bare")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "online.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
