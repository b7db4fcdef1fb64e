"""Decoder micro-benchmark: ``decode_readings`` now versus the version in git ``HEAD`` (or another file).

Run with ``python scripts/bench_decode.py`` from the repository root. The baseline is
``git show HEAD:schemas/payload.py`` copied to a temporary file and imported under another name (it uses the
working tree's ``schemas.metrics``, ``schemas.units`` and ``schemas.topics``), so both versions decode the
same bytes in the same process, alternately, and the ratio compares like with like. ``--baseline FILE``
compares with another copy of ``payload.py`` instead.

Cases: a 200-reading message (ingest's typical batch), a 1-reading message (the per-message overhead), and
a 200-reading message whose JSON contains a backslash escape (``\\u0061`` in a metric name), which takes the
duplicate-key detector's slower path. Figures are the best of ``--repeat`` rounds (least disturbed by other
load on the machine). The last line printed is one JSON object with the figures.
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
    """Time both versions on each case, check they agree, print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="payload.py to compare with (default: git HEAD's)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per measurement; the best is kept")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per round")
    args = parser.parse_args()
    baseline = _load_baseline(args.baseline)

    cases = {"200 readings": (_message(200), 200), "1 reading": (_message(1), 1),
             "200 readings, escaped": (_message(200, escaped=True), 200)}
    figures: dict[str, dict[str, float]] = {}
    print(f"{'case':<24}{'baseline µs/msg':>16}{'new µs/msg':>12}{'baseline µs/rdg':>17}{'new µs/rdg':>12}"
          f"{'new/baseline':>14}")
    for name, (raw, n) in cases.items():
        old_result = baseline.decode_readings(ADDRESS, raw, now=NOW)
        new_result = current.decode_readings(ADDRESS, raw, now=NOW)
        if (len(new_result.readings), new_result.rejections) != (n, []) or len(old_result.readings) != n:
            raise SystemExit(f"{name}: the versions do not both accept every reading")
        old_times, new_times = [], []
        def run_baseline(r: bytes = raw) -> object:
            return baseline.decode_readings(ADDRESS, r, now=NOW)

        def run_current(r: bytes = raw) -> object:
            return current.decode_readings(ADDRESS, r, now=NOW)

        for _ in range(2):  # alternate, so a burst of load from elsewhere hits both sides
            old_times.append(_best_us(run_baseline, args.repeat, args.budget))
            new_times.append(_best_us(run_current, args.repeat, args.budget))
        old_us, new_us = min(old_times), min(new_times)
        figures[name] = {"baseline_us_per_message": round(old_us, 2), "new_us_per_message": round(new_us, 2),
                         "baseline_us_per_reading": round(old_us / n, 3), "new_us_per_reading": round(new_us / n, 3),
                         "ratio": round(new_us / old_us, 3)}
        print(f"{name:<24}{old_us:>16.1f}{new_us:>12.1f}{old_us / n:>17.3f}{new_us / n:>12.3f}"
              f"{new_us / old_us:>14.3f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
