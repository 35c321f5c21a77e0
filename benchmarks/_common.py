"""What the benchmarks share: peak memory of a process tree, sampled while a step runs."""

from __future__ import annotations

import threading
import time


class PeakRSS:
    """Samples the RSS of this process (unless ``include_self`` is false) and its children every 0.2 s."""

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
                        total += p.memory_info().rss
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
