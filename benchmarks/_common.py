"""What the benchmarks share: peak memory of a process tree, sampled while a step runs."""

from __future__ import annotations

import threading
import time


def role(p, root_pid: int | None = None) -> str | None:
    """What a process of a measured tree is: "driver" (``root_pid``), "jvm", "workers" (Python), or
    None for a process not counted. A process the JVM spawns to run a command (Hadoop's local file
    system runs ``chmod``/``stat`` through ``posix_spawn``) shares the JVM's memory until it execs,
    so its RSS is the JVM's: such a copy (a Java process with its Java parent's command line) is not
    counted, nor are the commands it runs; JVMs (a standalone worker's executors among them) and
    Python processes are."""
    if p.pid == root_pid:
        return "driver"
    name = p.name()
    if "java" in name:
        parent = p.parent()
        if parent is not None and "java" in parent.name() and parent.cmdline() == p.cmdline():
            return None
        return "jvm"
    return "workers" if name.startswith("python") else None


def footprint(p, kind: str | None) -> int:
    """Bytes of memory ``p`` holds: its RSS, or for Python workers (forked from PySpark's daemon,
    sharing its pages copy-on-write) their proportional share (PSS), so shared pages count once."""
    if kind is None:
        return 0
    if kind == "workers":
        try:
            return p.memory_full_info().pss
        except (AttributeError, OSError):
            pass
    return p.memory_info().rss


class PeakRSS:
    """Samples the memory of this process (unless ``include_self`` is false) and its children every
    0.2 s, each address space once (:func:`role`, :func:`footprint`)."""

    def __init__(self, include_self: bool = True):
        import psutil

        self.proc = psutil.Process()
        self.include_self = include_self
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for p in [*([self.proc] if self.include_self else []), *self.proc.children(recursive=True)]:
                    try:
                        total += footprint(p, role(p, self.proc.pid))
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def reset(self) -> None:
        self.peak = 0

    def stop(self) -> None:
        self._stop.set()


#: Categories of the synthetic feature rows (a categorical feature not named here: Yes / No).
CATEGORIES = {"gender": ["Female", "Male"], "contract": ["Month-to-month", "One year", "Two year"],
              "internet_service": ["DSL", "Fiber optic", "No"],
              "payment_method": ["Bank transfer (automatic)", "Credit card (automatic)", "Electronic check",
                                 "Mailed check"],
              "region": ["North", "South", "East", "West"]}


def synthetic_columns(n: int, rng) -> dict:
    """One column per platform feature (churn.core.feature_defs), ``n`` rows: categories drawn
    uniformly, 0/1 integers, gamma-distributed numbers. What the training and drift benchmarks
    build their gold tables from, with a known churn process on top."""
    from churn.core.feature_defs import FEATURES

    cols = {}
    for f in FEATURES:
        if f.kind == "categorical":
            cols[f.name] = rng.choice(CATEGORIES.get(f.name, ["Yes", "No"]), n)
        elif f.dtype == "int":
            cols[f.name] = rng.integers(0, 2, n).astype("int32")
        else:
            cols[f.name] = rng.gamma(2.0, 10.0, n)
    return cols


def add_json_argument(ap, name: str) -> None:
    """``--json FILE``: where the benchmark writes its figures (default benchmarks/results/<name>.json)."""
    from pathlib import Path

    default = Path(__file__).resolve().parent / "results" / f"{name}.json"
    ap.add_argument("--json", default=str(default), metavar="FILE",
                    help=f"write the figures as JSON here, to compare runs over time (default: {default})")


def write_json(path: str, results) -> None:
    import json
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"figures written to {out}")
