"""Wall-clock seconds per named phase of an aggregation run (read / compute / write), for the benchmark.

Why: the job's cost is split between the database (reads, deletes, COPY), Polars (compute) and waiting for
the prefetch thread; tuning needs the split, not just the total. Sections are cheap (two ``perf_counter``
calls) so they stay on in production; the totals are logged at debug level and returned in the run report.
Sections may run in worker threads (the prefetch), so the accumulator is locked; a section that runs in a
worker overlaps the main thread's sections, so the sum of all phases can exceed the wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Accumulates seconds and call counts per phase name (``"meters.read"``, ``"groups.write"`` …)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._calls: dict[str, int] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Time the body of the ``with`` block under ``name`` (exceptions propagate, time still counts)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``name`` (thread-safe)."""
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds
            self._calls[name] = self._calls.get(name, 0) + 1

    def seconds(self) -> dict[str, float]:
        """Seconds per phase, rounded to milliseconds, in first-seen order."""
        with self._lock:
            return {k: round(v, 3) for k, v in self._seconds.items()}

    def calls(self) -> dict[str, int]:
        """How many times each phase ran."""
        with self._lock:
            return dict(self._calls)

    def clear(self) -> None:
        """Forget everything (a job object is reused across runs)."""
        with self._lock:
            self._seconds.clear()
            self._calls.clear()
