"""Saturation search for the ingest benchmark (``parkpulse bench ingest --saturate``).

An open-loop benchmark at a fixed offered rate cannot tell what the pipeline sustains: below saturation it
only echoes the offered rate, above it the backlog grows until something times out. This search asks the
question directly, with the same ingest instances kept running throughout:

1. **Probe** (closed loop): publish as fast as the broker acknowledges, at most ``--inflight`` messages
   unacknowledged, for ``--step-s``. The publish rate bounds what can be offered; the stored rate while
   the backlog grows estimates ingest's capacity. This step is above saturation by construction, so it is
   also the overload report: backlog at the end of publishing, unacknowledged publishes, time to drain, loss.
2. **Bisection** over offered rates (``--bisect-steps`` steps of ``--step-s``). A step is *sustained* when
   every published reading is stored (0 lost, 0 unacknowledged), the publisher kept up with the offered rate
   (≥ 97 %), and the last readings committed within ``--max-lag-s`` of the end of publishing (otherwise
   the step only buffered in the broker). Between steps the backlog drains, so steps do not pollute each other.
   Each step's ``verdict`` says why it failed: ``lost``, ``unacknowledged``, ``publisher_behind`` (the
   publisher or the broker could not offer the rate: not a verdict on ingest) or ``backlog``.
3. **Confirmation**: the best sustained rate again for ``--confirm-s`` (60 s by default). If it fails, the
   next step offers a little under the rate stored during the failed one (at least 15 % less), up to
   ``--confirm-attempts`` steps. The figure reported is the rate that passed its confirmation (0: none did).
4. **Latency curve**: publish → committed p50/p99 at 25, 50 and 80 % of the confirmed rate (each
   ``--curve-s``); the 100 % point is the confirmation step itself.

Then the same-run baselines (raw binary COPY ceiling, naive consumer). Every figure goes into one JSON object.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench_ingest import (
    BenchCluster,
    baselines,
    bench_origin,
    drop_bench_database,
    ingest_cluster,
    latencies,
    percentile,
    wait_stored,
)
from bench_publisher import PublishSpec, publish_step

_KEEP_UP = 0.97  # a step whose publisher reached less than this share of the offered rate is not sustained
_CONFIRM_STEP_DOWN = 0.15  # share by which a failed confirmation lowers the next one's rate (at least)


class _Search:
    """Runs steps against one cluster, numbering messages so every reading of the run is new."""

    def __init__(self, cluster: BenchCluster, args: argparse.Namespace) -> None:
        self.cluster, self.args = cluster, args
        self.next_message = 0
        self.stored_before = cluster.stored()
        self.steps: list[dict[str, Any]] = []

    def step(self, label: str, rate: float, seconds: float) -> dict[str, Any]:
        """Offer ``rate`` readings/s (0: closed loop) for ``seconds``; drain; return the step's figures."""
        a, cluster = self.args, self.cluster
        change_id = cluster.last_change_id()
        stored_before = cluster.stored()
        cpu_before = cluster.cpu()
        print(f"step {label}: offering {'max' if rate == 0 else f'{rate:,.0f}'} readings/s for {seconds:.0f} s",
              flush=True)
        result = publish_step(PublishSpec(
            cluster.mqtt_url, cluster.origin.isoformat(), a.devices, a.per_message, a.spacing_s, rate, seconds,
            first_message=self.next_message, inflight=a.inflight, timeout_s=a.publish_timeout))
        self.next_message += result["attempted"]
        published = result["attempted"] * a.per_message
        at_end = cluster.stored() - stored_before  # stored when publishing ended (the backlog is the rest)
        stored, drain_s = wait_stored(cluster, stored_before + published, idle_s=a.drain_idle,
                                      limit_s=max(120.0, seconds * 10), progress=True)
        stored -= stored_before
        cpu = cluster.cpu().per_reading_us(cpu_before, stored)
        publish_s = max(result["publish_s"], 1e-9)
        lat = latencies(cluster, result["log"], per_message=a.per_message, spacing_s=a.spacing_s,
                        after_change_id=change_id)
        acked = result["acked"] * a.per_message  # a publish without PUBACK may never have reached the broker
        figures: dict[str, Any] = {
            "step": label,
            "offered_readings_per_s": round(rate) if rate else "closed_loop",
            "published_readings_per_s": round(published / publish_s),
            "stored_readings_per_s_while_publishing": round(at_end / publish_s),
            "publish_s": round(publish_s, 2),
            "readings_published": published,
            "readings_stored": stored,
            "readings_lost": published - stored,
            "readings_lost_after_puback": max(acked - stored, 0),
            "messages_unacknowledged": result["unacked"],
            "publisher_errors": result["errors"],
            "backlog_readings_at_publish_end": published - at_end,
            "drain_s": round(drain_s, 2),
            "p50_latency_s": percentile(lat, 0.50),
            "p99_latency_s": percentile(lat, 0.99),
            "max_latency_s": round(lat[-1], 3) if lat else float("nan"),
            "messages_latency_measured": len(lat),
            "cpu_us_per_reading": cpu,
        }
        kept_up = rate == 0 or published / publish_s >= _KEEP_UP * rate
        # why a step is not sustained, most fundamental first (the publisher side cannot judge ingest)
        verdict = ("nothing_published" if not published else "lost" if stored < acked
                   else "unacknowledged" if result["unacked"] else "publisher_behind" if not kept_up
                   else "backlog" if drain_s > a.max_lag_s else "sustained")
        figures["verdict"] = verdict
        figures["sustained"] = verdict == "sustained"
        print(f"  → {figures['published_readings_per_s']:,} published/s, {stored:,} of {published:,} stored, "
              f"backlog {figures['backlog_readings_at_publish_end']:,}, drained in {drain_s:.1f} s, "
              f"p99 {figures['p99_latency_s']} s: {verdict}",
              flush=True)
        self.steps.append(figures)
        return figures


def _search(s: _Search, a: argparse.Namespace) -> tuple[dict[str, Any], float, dict[str, Any] | None]:
    """Probe, bisect and confirm; returns the probe, the confirmed rate (0 if none) and its step."""
    probe = s.step("probe", 0, a.step_s)
    capacity = min(probe["published_readings_per_s"], max(probe["stored_readings_per_s_while_publishing"], 1))
    lo, hi = 0.0, max(min(probe["published_readings_per_s"], 2 * capacity), a.min_rate)
    rate = max(capacity * 0.9, a.min_rate)
    for i in range(max(a.bisect_steps, 1)):
        if s.step(f"bisect-{i + 1}", rate, a.step_s)["sustained"]:
            lo = rate
        else:
            hi = rate
        rate = (lo + hi) / 2 if lo else max(hi / 2, a.min_rate)
        if hi <= a.min_rate:
            break
    confirm_rate = lo
    for attempt in range(max(a.confirm_attempts, 1)):
        if confirm_rate < a.min_rate:
            break
        confirm = s.step(f"confirm-{attempt + 1}", confirm_rate, a.confirm_s)
        if confirm["sustained"]:
            return probe, confirm_rate, confirm
        confirm_rate = _next_confirm_rate(confirm_rate, confirm)
    return probe, 0.0, None


def _next_confirm_rate(rate: float, failed: dict[str, Any]) -> float:
    """The next, lower rate to confirm after a failed confirmation step.

    A longer step can fail where the short one passed (the database's checkpoints and autovacuum, the
    broker's queue growing for longer). When the step failed on backlog, the rate stored while publishing is
    what the pipeline kept up with for that long, so the next step offers a little under it; otherwise, or if
    that is not lower, 15 % less.
    """
    step_down = rate * (1 - _CONFIRM_STEP_DOWN)
    if failed["verdict"] == "backlog":
        return min(step_down, float(failed["stored_readings_per_s_while_publishing"]) * _KEEP_UP)
    return step_down


def run_saturate(args: argparse.Namespace) -> dict[str, Any]:
    """The whole search and the baselines; returns every figure."""
    origin = bench_origin(args)
    print(f"saturation search: {args.instances} ingest instance(s), {args.per_message} readings per message, "
          f"{args.devices} devices, at most {args.inflight} unacknowledged publishes", flush=True)
    with ingest_cluster(args, origin) as cluster:
        search = _Search(cluster, args)
        probe, saturation, confirm = _search(search, args)
        curve: list[dict[str, Any]] = []
        if saturation and confirm is not None:
            for share in (0.25, 0.5, 0.8):
                point = search.step(f"curve-{round(share * 100)}%", saturation * share, args.curve_s)
                curve.append({"share": share, "offered_readings_per_s": round(saturation * share),
                              "p50_latency_s": point["p50_latency_s"], "p99_latency_s": point["p99_latency_s"],
                              "sustained": point["sustained"]})
            curve.append({"share": 1.0, "offered_readings_per_s": round(saturation),
                          "p50_latency_s": confirm["p50_latency_s"], "p99_latency_s": confirm["p99_latency_s"],
                          "sustained": True})
        duplicates = cluster.metric("readings_duplicate_total")
        batches = {"batches_committed": int(cluster.metric("batches_committed_total")),
                   "batches_direct": int(cluster.metric("batches_direct_total"))}
        total_stored = cluster.stored() - search.stored_before
    base = baselines(cluster, args, max(total_stored, 1))
    if not args.keep_db:
        drop_bench_database(cluster)
    p80 = next((c for c in curve if c["share"] == 0.8), None)
    return {
        "benchmark": "ingest_saturation",
        "instances": args.instances,
        "per_message": args.per_message,
        "devices": args.devices,
        "inflight": args.inflight,
        "step_s": args.step_s,
        "confirm_s": args.confirm_s,
        "saturation_readings_per_s": round(saturation),
        "saturation_confirmed_s": args.confirm_s if confirm is not None else 0,
        "p99_latency_at_80pct_s": p80["p99_latency_s"] if p80 else float("nan"),
        "cpu_us_per_reading_at_saturation": confirm["cpu_us_per_reading"] if confirm else None,
        "latency_curve": curve,
        "overload": {k: probe[k] for k in ("published_readings_per_s", "stored_readings_per_s_while_publishing",
                                           "backlog_readings_at_publish_end", "messages_unacknowledged",
                                           "publisher_errors", "readings_lost", "drain_s")},
        "duplicates_skipped": int(duplicates),
        **batches,
        **base,
        "copy_ceiling_ratio": round(saturation / base["copy_ceiling_rows_per_s"], 3),
        "naive_ratio": round(saturation / max(base["naive_readings_per_s"], 1), 1),
        "probe_capacity_estimate_readings_per_s": probe["stored_readings_per_s_while_publishing"],
        "steps": search.steps,
    }
