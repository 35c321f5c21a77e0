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
