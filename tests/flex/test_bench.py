"""The benchmark runs end to end on a tiny input (its figures are printed by `parkpulse dr bench`)."""

from __future__ import annotations

from flex._bench import run_benchmark


def test_benchmark_produces_a_figure_per_operation():
    figures = run_benchmark(days=60, events=2, assets=4)
    names = [f.name for f in figures]
    assert "baseline JIANGSU_5WD" in names
    assert "forecast_park_flex 24 h" in names
    assert all(f.median_ms >= 0 for f in figures)
