"""The report's charts as PNG images (matplotlib, Agg, no global state): daily energy per carrier, the
electricity load duration curve and the PUE trend.

Figures are built with :class:`matplotlib.figure.Figure` directly (never pyplot), and the CJK font is
passed to every text element, so concurrent API requests cannot disturb each other's styles. A chart
with nothing to show returns ``None`` and the writers print "未计算 not computed" instead.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import groupby
from typing import Final

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from reports import _labels as lbl
from reports._data import DailyEnergy, LoadDuration, PueDay
from reports._fonts import CjkFont

WIDTH_IN: Final = 7.2
DPI: Final = 150
_COLOURS: Final = ("#1f6fb4", "#e08a1e", "#2e9e4f", "#c0392b", "#7d5ba6", "#7f7f7f")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _style(ax: Axes, fp: FontProperties) -> None:
    ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=7)
    for label in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        label.set_fontproperties(fp)
        label.set_fontsize(7)


def daily_energy_chart(daily: Sequence[DailyEnergy], font: CjkFont) -> bytes | None:
    """One panel per carrier (its own unit), one bar series per metric, one bar per local day."""
    if not daily:
        return None
    fp = FontProperties(fname=str(font.path))
    rows = sorted(daily, key=lambda d: (d.carrier, d.metric, d.day))
    carriers = [(c, list(g)) for c, g in groupby(rows, key=lambda d: d.carrier)]
    fig = Figure(figsize=(WIDTH_IN, 1.8 * len(carriers) + 0.2))
    axes = fig.subplots(len(carriers), 1, squeeze=False)[:, 0]
    for ax, (carrier, items) in zip(axes, carriers, strict=True):
        metrics = [(m, list(g)) for m, g in groupby(items, key=lambda d: d.metric)]
        width = 0.8 / len(metrics)
        for i, (metric, points) in enumerate(metrics):
            xs = [p.day.toordinal() + (i - (len(metrics) - 1) / 2) * width for p in points]
            ax.bar(xs, [p.energy for p in points], width=width, color=_COLOURS[i % len(_COLOURS)],
                   label=lbl.lookup(lbl.METRIC, metric))
        days = sorted({p.day for p in items})
        ticks = days[::max(1, len(days) // 10)]
        ax.set_xticks([d.toordinal() for d in ticks], [d.strftime("%m-%d") for d in ticks])
        title = lbl.lookup(lbl.CARRIER, carrier)
        if len(metrics) == 1:
            title += f" · {lbl.lookup(lbl.METRIC, metrics[0][0])}"
        else:
            ax.legend(prop=FontProperties(fname=str(font.path), size=7), frameon=False, loc="lower right",
                      bbox_to_anchor=(1.0, 1.0), ncols=len(metrics))
        ax.set_title(title, fontproperties=fp, fontsize=9, loc="left")
        ax.set_ylabel(items[0].unit, fontproperties=fp, fontsize=8)
        _style(ax, fp)
    fig.tight_layout()
    return _png(fig)


def load_duration_chart(load: LoadDuration | None, font: CjkFont) -> bytes | None:
    """Load (kW) against the hours it is reached or exceeded in the month."""
    if load is None or not load.load_kw:
        return None
    fp = FontProperties(fname=str(font.path))
    fig = Figure(figsize=(WIDTH_IN, 2.8))
    ax = fig.subplots()
    hours = [(i + 1) * load.interval_h for i in range(len(load.load_kw))]
    ax.fill_between(hours, load.load_kw, step="pre", color="#1f6fb4", alpha=0.25, linewidth=0)
    ax.step(hours, load.load_kw, where="pre", color="#1f6fb4", linewidth=1.0)
    peak, mean = load.load_kw[0], sum(load.load_kw) / len(load.load_kw)
    ax.axhline(mean, color="#e08a1e", linewidth=0.8, linestyle="--")
    ax.annotate(f"峰值 peak {peak:,.0f} kW", (hours[0], peak), textcoords="offset points", xytext=(8, -10),
                fontproperties=fp, fontsize=7)
    ax.annotate(f"平均 mean {mean:,.0f} kW", (hours[-1], mean), textcoords="offset points", xytext=(-90, 4),
                fontproperties=fp, fontsize=7, color="#b06010")
    ax.set_xlim(0, hours[-1])
    ax.set_ylim(0, peak * 1.08 if peak > 0 else 1)
    ax.set_xlabel(lbl.column("rank_hours"), fontproperties=fp, fontsize=8)
    ax.set_ylabel(lbl.column("load_kw"), fontproperties=fp, fontsize=8)
    ax.text(1.0, 1.02, f"{load.n_meters} 一级电表 level-1 meter(s) · {load.interval_h * 60:g} min",
            transform=ax.transAxes, ha="right", va="bottom", fontproperties=fp, fontsize=7, color="#555555")
    _style(ax, fp)
    fig.tight_layout()
    return _png(fig)


def pue_chart(pue: Sequence[PueDay], font: CjkFont) -> bytes | None:
    """Daily PUE per data-centre site (days without a value are gaps)."""
    points = [p for p in pue if p.pue is not None]
    if not points:
        return None
    fp = FontProperties(fname=str(font.path))
    fig = Figure(figsize=(WIDTH_IN, 2.6))
    ax = fig.subplots()
    for i, (site, items) in enumerate(groupby(sorted(pue, key=lambda p: (p.site_id, p.day)), key=lambda p: p.site_id)):
        series = list(items)
        ax.plot([p.day.toordinal() for p in series], [p.pue if p.pue is not None else float("nan") for p in series],
                marker="o", markersize=2.5, linewidth=1.0, color=_COLOURS[i % len(_COLOURS)], label=site)
    days = sorted({p.day for p in pue})
    ticks = days[::max(1, len(days) // 10)]
    ax.set_xticks([d.toordinal() for d in ticks], [d.strftime("%m-%d") for d in ticks])
    ax.set_ylabel("PUE", fontproperties=fp, fontsize=8)
    ax.legend(prop=FontProperties(fname=str(font.path), size=7), frameon=False, loc="lower right",
              bbox_to_anchor=(1.0, 1.0), ncols=4)
    _style(ax, fp)
    fig.tight_layout()
    return _png(fig)
