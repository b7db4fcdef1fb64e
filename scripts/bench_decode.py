"""Decoder micro-benchmark: the pydantic ``decode_readings`` versus the msgspec fast path, same run.

Run with ``python scripts/bench_decode.py`` from the repository root. By default the two sides are the
working tree's pydantic decoder (:func:`schemas.payload.decode_readings`) and its fast path
(:func:`schemas.payload_fast.decode_readings_columns`, JSON straight into columns). ``--against-head`` compares
the pydantic decoder with the version in git ``HEAD`` instead (``git show HEAD:schemas/payload.py`` copied to a
temporary file and imported under another name), and ``--baseline FILE`` with another copy of ``payload.py``.
Both sides decode the same bytes in the same process, alternately, so the ratio compares like with like.

Cases: a 200-reading message of four metrics (an edge agent's typical batch), the benchmark publisher's
200-reading single-metric message, a 1-reading message (the per-message overhead), and a 200-reading message
whose JSON contains a backslash escape (``\\u0061`` in a metric name), which takes the duplicate-key
detector's slower path. Figures are the best of ``--repeat`` rounds (least disturbed by other load on the
machine). The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schemas import parse_topic  # noqa: E402 -- after the path setup so the script runs from anywhere
from schemas import payload as current  # noqa: E402
from schemas.payload_fast import decode_readings_columns  # noqa: E402

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ADDRESS = parse_topic("parkpulse/v1/park-a/m-001/readings")
METRICS = [("active_energy_import", "kWh"), ("active_power", "kW"), ("voltage_l1", "V"), ("current_l1", "A")]


def _message(n: int, *, escaped: bool = False) -> bytes:
    """A realistic ``readings`` payload: ``n`` readings, compact JSON like the edge agent sends."""
    readings = []
    for i in range(n):
        metric, unit = METRICS[i % len(METRICS)]
        ts = (NOW - timedelta(seconds=n - i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        readings.append({"ts": ts, "metric": metric, "value": 100.0 + i * 0.25, "unit": unit, "quality": "good"})
    raw = json.dumps({"v": 1, "device": "m-001", "seq": 42, "sent_at": NOW.isoformat().replace("+00:00", "Z"),
                      "readings": readings}, separators=(",", ":")).encode()
    if escaped:  # same document, one name spelled with a \u escape
        raw = raw.replace(b'"active_power"', b'"\\u0061ctive_power"', 1)
    return raw


def _single_metric(n: int) -> bytes:
    """The benchmark publisher's message: ``n`` one-minute register values of one metric, no quality."""
    start = NOW - timedelta(days=10)
    readings = [{"ts": (start + timedelta(minutes=i)).isoformat(), "metric": "active_energy_import",
                 "value": i * 0.25, "unit": "kWh"} for i in range(n)]
    return json.dumps({"v": 1, "device": "m-001", "seq": 3, "sent_at": NOW.isoformat(), "readings": readings},
                      separators=(",", ":")).encode()


class _FastSide:
    """What ingest runs: the fast path, else (small or undecided messages) the pydantic decoder."""

    @staticmethod
    def decode_readings(address: object, raw: bytes, *, now: datetime) -> object:
        fast = decode_readings_columns(address, raw, now=now)  # type: ignore[arg-type]
        return fast if fast is not None else current.decode_readings(address, raw, now=now)  # type: ignore[arg-type]


def _accepted(side: object, raw: bytes) -> int:
    result = side.decode_readings(ADDRESS, raw, now=NOW)  # type: ignore[attr-defined]
    if result is None:
        return -1
    if hasattr(result, "columns"):
        return sum(len(c.ts_us) for c in result.columns)
    return len(result.readings) if not result.rejections else -1


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_payload_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _load_baseline(path: Path | None) -> ModuleType:
    """Import the baseline ``payload.py`` (HEAD's unless ``path`` is given) as module ``_payload_baseline``."""
    if path is not None:
        return _import_file(path)
    source = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:schemas/payload.py"],  # noqa: S607
                            check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        copy = Path(tmp) / "payload_baseline.py"
        copy.write_bytes(source)
        return _import_file(copy)  # compiled on import: the copy is not needed afterwards


def _best_us(fn: Callable[[], object], repeat: int, budget_s: float) -> float:
    """Best time of one call in µs: ``repeat`` rounds of as many calls as fit in ``budget_s``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * budget_s / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    """Time both sides on each case, check they accept everything, print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--against-head", action="store_true", help="pydantic decoder vs git HEAD's, not vs fast")
    parser.add_argument("--baseline", type=Path, help="payload.py to compare the pydantic decoder with")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per measurement; the best is kept")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per round")
    args = parser.parse_args()
    if args.against_head or args.baseline:
        baseline: object = _load_baseline(args.baseline)
        new_side: object = current
        labels = ("baseline", "new")
    else:
        baseline, new_side, labels = current, _FastSide, ("pydantic", "fast")

    cases = {"200 readings, 4 metrics": (_message(200), 200), "200 readings, 1 metric": (_single_metric(200), 200),
             "1 reading": (_message(1), 1), "200 readings, escaped": (_message(200, escaped=True), 200)}
    figures: dict[str, dict[str, float]] = {}
    print(f"{'case':<26}{labels[0] + ' µs/msg':>18}{labels[1] + ' µs/msg':>16}{labels[0] + ' rdg/s':>18}"
          f"{labels[1] + ' rdg/s':>16}{'ratio':>8}")
    for name, (raw, n) in cases.items():
        if _accepted(baseline, raw) != n or _accepted(new_side, raw) != n:
            raise SystemExit(f"{name}: the two sides do not both accept every reading")
        old_times, new_times = [], []

        def run_baseline(r: bytes = raw) -> object:
            return baseline.decode_readings(ADDRESS, r, now=NOW)  # type: ignore[attr-defined]

        def run_new(r: bytes = raw) -> object:
            return new_side.decode_readings(ADDRESS, r, now=NOW)  # type: ignore[attr-defined]

        for _ in range(2):  # alternate, so a burst of load from elsewhere hits both sides
            old_times.append(_best_us(run_baseline, args.repeat, args.budget))
            new_times.append(_best_us(run_new, args.repeat, args.budget))
        old_us, new_us = min(old_times), min(new_times)
        figures[name] = {f"{labels[0]}_us_per_message": round(old_us, 2),
                         f"{labels[1]}_us_per_message": round(new_us, 2),
                         f"{labels[0]}_readings_per_s": round(n / old_us * 1e6),
                         f"{labels[1]}_readings_per_s": round(n / new_us * 1e6),
                         "speedup": round(old_us / new_us, 2)}
        print(f"{name:<26}{old_us:>18.1f}{new_us:>16.1f}{n / old_us * 1e6:>18,.0f}{n / new_us * 1e6:>16,.0f}"
              f"{old_us / new_us:>8.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
