"""Online benchmark: `churn serve` answering single-customer requests, next to KServe serving the bare model.

    .venv/platform/bin/python benchmarks/online.py             # about 9 min
    .venv/platform/bin/python benchmarks/online.py --requests 500

Set-up (timed, not a figure): a small generated lakehouse (20k customers, 28 days, 7-day labels)
trains the champion; the last day is scored and published to a throwaway PostgreSQL (online
features included). Then, in the same run, on loopback:

- ours: `churn serve` (KServe ModelServer, one worker): v1 ``predict`` by customer id, so each
  request looks the features up in PostgreSQL and returns probability, band and top-3 reasons;
- baseline: KServe's ModelServer serving the same booster bare: the request carries the feature
  vector, the answer is the probability (no lookup, no reasons).

Ours runs twice: as configured by default (the newest night's feature vectors in memory) and
with ``CHURN_SERVE_CACHE_CUSTOMERS=0`` (every lookup in PostgreSQL), so the cache's share shows.
Ours and bare are measured side by side, taking turns in blocks (sequential: 250 requests each in
turn; concurrent: three runs each in turn), so both see the machine in the same states and the
ratios do not swing with whatever else the machine did while one of them ran: p50 / p99 latency of
sequential requests, throughput with 4 and 8 concurrent keep-alive clients, customers drawn at
random from the published night; then each an open-loop run at a fixed rate (default 200 req/s for
60 s): the latency distribution from when each request was due, and the errors (must be 0). The
no-cache server runs alone afterwards.

Writes the figures as JSON (``--json``, default benchmarks/results/online.json): ``p99_ms``,
``bare_p99_ms``, ``throughput_share`` (ours over bare, the lower of 4 and 8 clients).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

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
    return latencies(take_turns({"one": (port, bodies)}, path, len(bodies))["one"])


def take_turns(servers: dict[str, tuple[int, list[dict]]], path: str, n: int, block: int = 250) -> dict[str, list]:
    """``n`` sequential requests to each server, in blocks of ``block`` that take turns (the first
    server of each round alternates), so each sees the machine in the same states as the others: a
    busy minute of the machine lands on all of them, not on whichever ran then. Each request's
    latency, in seconds, per server."""
    clients = {name: Client(port) for name, (port, _) in servers.items()}
    for name, (_, bodies) in servers.items():
        for body in bodies[:20]:  # warm-up
            clients[name].post(path, body)
    times: dict[str, list] = {name: [] for name in servers}
    order = list(servers)
    for start in range(0, n, block):
        for name in order:
            client, bodies = clients[name], servers[name][1]
            for body in bodies[start:min(n, start + block)]:
                t0 = time.perf_counter()
                client.post(path, body)
                times[name].append(time.perf_counter() - t0)
        order.reverse()
    return times


def latencies(times: list[float]) -> dict:
    times = sorted(times)
    return {"p50_ms": 1000 * times[len(times) // 2], "p99_ms": 1000 * times[int(len(times) * 0.99) - 1],
            "n": len(times)}


def concurrent_turns(servers: dict[str, tuple[int, list[dict]]], path: str, clients: int, seconds: float,
                     rounds: int = 3) -> dict[str, float]:
    """Throughput of each server with ``clients`` keep-alive clients: ``rounds`` runs of
    ``seconds / rounds`` each, the servers taking turns as in :func:`take_turns`."""
    rates: dict[str, list[float]] = {name: [] for name in servers}
    order = list(servers)
    for _ in range(rounds):
        for name in order:
            port, bodies = servers[name]
            rates[name].append(concurrent(port, path, bodies, clients, seconds / rounds))
        order.reverse()
    return {name: sum(r) / len(r) for name, r in rates.items()}  # equal-length runs: the mean rate


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


def open_loop(port: int, path: str, bodies: list[dict], rate: float, seconds: float, clients: int = 16) -> dict:
    """A fixed request rate, whatever the server does (open loop): request k is due at t0 + k/rate and
    handed to one of ``clients`` keep-alive connections. Latency counts from when the request was
    due, so time spent waiting behind a slow answer counts too (no coordinated omission)."""
    import queue

    work: queue.Queue = queue.Queue()
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = Client(port)
        while (item := work.get()) is not None:
            k, due = item
            try:
                conn.post(path, bodies[k % len(bodies)])
                latencies.append(time.perf_counter() - due)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(str(exc)[:200])
                conn = Client(port)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.2
    for k in range(n):
        due = t0 + k / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        work.put((k, due))
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def q(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else float("nan")

    return {"rate": rate, "seconds": seconds, "sent": n, "answered": len(lat), "errors": len(errors),
            "error_examples": errors[:3], "achieved_rps": round(len(lat) / wall, 1),
            "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": q(1.0)}


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
            self.model.booster.set_param({"nthread": 1})  # as the platform's predictor: one row needs no threads
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            frame = pd.DataFrame(payload["instances"])
            return {"predictions": self.model.predict(frame).tolist()}

    m = Bare("churn")
    m.load()
    from ml.serving.server import quiet_request_logs

    server = ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False)  # as churn serve
    quiet_request_logs()  # as churn serve: no log line per request
    server.start([m])


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
    from _common import add_json_argument, write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=5000, help="sequential requests per server (p99: the 50th slowest)")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each concurrent run")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second of the open-loop run")
    ap.add_argument("--rate-seconds", type=float, default=60.0, help="duration of the open-loop run")
    ap.add_argument("--work", help="keep the set-up in this folder and reuse it on the next run (default: a "
                                   "temporary folder, removed)")
    add_json_argument(ap, "online")
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

        ports = {"ours": free_port(), "ours_no_cache": free_port(), "bare": free_port()}
        full_env = {**os.environ, **env}
        servers = {
            "ours": ([sys.executable, "-m", "churn", "serve", "--port", str(ports["ours"])], {}),
            "ours_no_cache": ([sys.executable, "-m", "churn", "serve", "--port", str(ports["ours_no_cache"])],
                              {"CHURN_SERVE_CACHE_CUSTOMERS": "0"}),
            "bare": ([sys.executable, __file__, "--bare-server", str(ports["bare"]), str(model_dir)], {})}
        results: dict[str, dict] = {}
        path = "/v1/models/churn:predict"

        def start(name: str) -> int:
            cmd, extra = servers[name]
            log = base / f"{name}.log"
            proc = subprocess.Popen(cmd, env={**full_env, **extra}, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_ready(ports[name], proc, log)
            if name == "ours":
                wait_cached(ports[name])
            return ports[name]

        def lookup_mean_ms(port: int) -> float:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            metrics = dict(line.rsplit(" ", 1) for line in c.getresponse().read().decode().splitlines()
                           if line.startswith("churn_feature_lookup_seconds_"))
            return 1000 * float(metrics["churn_feature_lookup_seconds_sum"]) / float(
                metrics["churn_feature_lookup_seconds_count"])

        def stop_all() -> None:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)

        # ours and bare side by side, taking turns: the ratios compare them under the same load
        pair = {"ours": (start("ours"), ours_bodies), "bare": (start("bare"), bare_bodies)}
        say(f"ours and bare, taking turns: {args.requests} sequential requests each, then 4 and 8 concurrent clients")
        for name, times in take_turns(pair, path, args.requests).items():
            results[name] = latencies(times)
        for clients in (4, 8):
            for name, rate in concurrent_turns(pair, path, clients, args.seconds).items():
                results[name][f"rps_{clients}"] = rate
        for name in pair:
            say(f"{name}: open loop, {args.rate:g} req/s for {args.rate_seconds:g} s")
            results[name]["open_loop"] = open_loop(pair[name][0], path, pair[name][1], args.rate, args.rate_seconds)
        results["ours"]["lookup_mean_ms"] = lookup_mean_ms(pair["ours"][0])
        stop_all()
        # every lookup in PostgreSQL: what the cache is worth (alone; not a target)
        port = start("ours_no_cache")
        say(f"ours_no_cache: {args.requests} sequential requests, then 4 and 8 concurrent clients")
        r = sequential(port, path, ours_bodies)
        r["rps_4"] = concurrent(port, path, ours_bodies, 4, args.seconds)
        r["rps_8"] = concurrent(port, path, ours_bodies, 8, args.seconds)
        r["lookup_mean_ms"] = lookup_mean_ms(port)
        results["ours_no_cache"] = r
        stop_all()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        pg.stop()
        if tmp is not None:
            tmp.cleanup()

    ours, nocache, bare = results["ours"], results["ours_no_cache"], results["bare"]
    thr = min(ours["rps_4"] / bare["rps_4"], ours["rps_8"] / bare["rps_8"])
    results.update({"p99_ms": round(ours["p99_ms"], 2), "bare_p99_ms": round(bare["p99_ms"], 2),
                    "p99_ratio": round(ours["p99_ms"] / bare["p99_ms"], 2), "throughput_share": round(thr, 3),
                    "cores": os.cpu_count()})
    print(f"\nonline benchmark: single-customer requests on loopback, {os.cpu_count()} cores, one server worker")
    print(f"{'figure':40} {'ours':>9} {'no cache':>9} {'bare':>9} {'ours/bare':>9}  target")
    for key, label, fmt in (("p50_ms", "p50 latency, sequential (ms)", ".2f"), ("p99_ms", "p99 latency, sequential (ms)", ".2f"),
                            ("lookup_mean_ms", "  of which feature lookup, mean (ms)", ".3f"),
                            ("rps_4", "throughput, 4 concurrent clients (req/s)", ",.0f"),
                            ("rps_8", "throughput, 8 concurrent clients (req/s)", ",.0f")):
        b = bare.get(key)
        ratio = "" if b is None else (f"{ours[key] / b:.2f}x" if key.endswith("ms") else f"{ours[key] / b:.0%}")
        target = {"p99_ms": "<= 10 ms and <= 1.2x bare", "rps_4": ">= 80 % of bare", "rps_8": ">= 80 % of bare"}.get(key, "")
        print(f"{label:40} {format(ours[key], fmt):>9} {format(nocache[key], fmt):>9} "
              f"{'-' if b is None else format(b, fmt):>9} {ratio:>9}  {target}")
    for name in ("ours", "bare"):
        o = results[name]["open_loop"]
        print(f"open loop {name:5} {o['rate']:g} req/s x {o['seconds']:g} s: {o['answered']:,} answered, "
              f"{o['errors']} errors, p50 {o['p50_ms']} / p90 {o['p90_ms']} / p99 {o['p99_ms']} / "
              f"p99.9 {o['p999_ms']} / max {o['max_ms']} ms")
    write_json(args.json, results)
    return 0


def wait_cached(port: int, limit: float = 60) -> None:
    """Until the predictor holds the night in memory (its gauge says how many customers)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith("churn_feature_cache_customers ") and float(line.split()[1]) > 0:
                return
        time.sleep(0.3)
    raise SystemExit("the predictor never cached the night")


if __name__ == "__main__":
    raise SystemExit(main())
