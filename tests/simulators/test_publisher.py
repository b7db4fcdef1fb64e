"""The publishing pipeline against an in-memory sink: contract, ordering, record, faults, pacing."""

import asyncio
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from schemas import BIRTH_ADAPTER, STATUS_ADAPTER, TopicKind, decode_readings, parse_topic
from simulators import Scenario, load_scenario, publish_simulation
from simulators._messages import MAX_READINGS_PER_MESSAGE

NOW = datetime(2026, 11, 20, 8, 7, 30, tzinfo=UTC)
SENT_AT = datetime(2026, 11, 20, 8, 7, 31, tzinfo=UTC)


class ListSink:
    """Keeps every message; yields to the loop like a real client awaiting a PUBACK."""

    def __init__(self):
        self.messages = []

    async def publish(self, topic, payload, *, qos, retain):
        self.messages.append((topic, payload, qos, retain))
        await asyncio.sleep(0)


async def simulate(scenario=None, *, duration="2h", seed=1, record=True, **kwargs):
    sink = ListSink()
    report = await publish_simulation(scenario or load_scenario(), sink, duration=duration, speed=0, seed=seed,
                                      record=record, now=NOW, wall_clock=lambda: SENT_AT, **kwargs)
    return report, sink.messages


def by_kind(messages):
    out = defaultdict(list)
    for topic, payload, qos, retain in messages:
        out[parse_topic(topic).kind].append((topic, payload, qos, retain))
    return out


async def test_births_come_first_retained_and_valid():
    report, messages = await simulate()
    scenario = load_scenario()
    kinds = [parse_topic(t).kind for t, *_ in messages]
    n_devices = len(scenario.all_devices())
    assert kinds[:n_devices] == [TopicKind.BIRTH] * n_devices
    assert kinds[n_devices: 2 * n_devices] == [TopicKind.STATUS] * n_devices
    assert report.births_published == n_devices
    assert report.status_published == 2 * n_devices
    births = {}
    for topic, payload, qos, retain in by_kind(messages)[TopicKind.BIRTH]:
        birth = BIRTH_ADAPTER.validate_json(payload)
        assert qos == 1
        assert retain
        assert parse_topic(topic).park_id == "demo-park"
        assert parse_topic(topic).device_id == birth["device"]
        births[birth["device"]] = birth
    specs = {d.id: d for d in scenario.all_devices()}
    assert births.keys() == specs.keys()
    boundary = births["m1-boundary"]
    assert (boundary["kind"], boundary["carrier"], boundary["metering_level"], boundary["role"]) == (
        "electricity_meter", "electricity", 1, "park_boundary")
    assert births["m3-dc-it"]["site"] == "data-centre"
    assert births["m3-dc-it"]["role"] == "dc_it"
    assert births["gas-boundary"]["carrier"] == "gas"
    assert births["heat-workshop-a"]["carrier"] == "heat"
    assert births["pv-1"]["rated_power_kw"] == 400
    assert births["m2-office"]["register_max"] == 999_999.99
    statuses = [STATUS_ADAPTER.validate_json(p) for _, p, _, r in by_kind(messages)[TopicKind.STATUS] if r]
    assert [s["online"] for s in statuses] == [True] * n_devices + [False] * n_devices


async def test_every_readings_payload_decodes_without_rejections_and_matches_the_record():
    report, messages = await simulate()
    decoded_rows = []
    seqs = defaultdict(list)
    for topic, payload, qos, retain in by_kind(messages)[TopicKind.READINGS]:
        assert qos == 1
        assert not retain
        address = parse_topic(topic)
        decoded = decode_readings(address, payload, now=NOW)
        assert decoded.rejections == [], decoded.summary()
        assert decoded.sent_at == SENT_AT
        seqs[address.device_id].append(decoded.seq)
        decoded_rows += [(address.device_id, r.metric, r.ts, r.value) for r in decoded.readings]
        raw = json.loads(payload)
        assert all(r["ts"].endswith("+08:00") and r["quality"] == "good" for r in raw["readings"])
    assert all(s == list(range(len(s))) for s in seqs.values())
    assert report.records is not None
    assert [(r.device_id, r.metric, r.ts, r.value) for r in report.records] == decoded_rows
    assert report.readings_published == len(decoded_rows) == sum(report.counts.values())
    assert report.messages_published == len(by_kind(messages)[TopicKind.READINGS])
    assert Counter((d, m) for d, m, _, _ in decoded_rows) == report.counts


async def test_window_ends_at_now_and_every_series_is_complete():
    report, _ = await simulate(duration="2h")
    assert report.simulated_end == datetime(2026, 11, 20, 8, 7, tzinfo=UTC)
    assert report.simulated_start == report.simulated_end - timedelta(hours=2)
    assert report.records is not None
    assert max(r.ts for r in report.records) == report.simulated_end
    assert min(r.ts for r in report.records) == report.simulated_start + timedelta(minutes=1)
    assert set(report.counts.values()) == {120}


async def test_one_message_per_device_per_batch_window():
    report, messages = await simulate(duration="1h")
    # 07:07 -> 08:07 touches the quarter hours ending 07:15, 07:30, 07:45, 08:00 and the partial 08:15 one
    assert report.messages_published == 5 * report.devices
    sizes = Counter()
    for topic, payload, *_ in by_kind(messages)[TopicKind.READINGS]:
        if parse_topic(topic).device_id == "wx-1":
            sizes[len(json.loads(payload)["readings"])] += 1
    assert sizes == Counter({8: 1, 15: 3, 7: 1})


async def test_same_seed_same_readings():
    first, _ = await simulate(duration="30m", seed=5)
    second, _ = await simulate(duration="30m", seed=5)
    other, _ = await simulate(duration="30m", seed=6)
    assert first.records == second.records
    assert first.records != other.records


async def test_long_batches_are_split_below_the_ingest_limits():
    scenario = Scenario.model_validate({
        "park": {"id": "p"},
        "simulation": {"sample_interval_s": 1, "batch_interval_s": 3600},
        "devices": [{"id": "m", "kind": "electricity_meter", "load": {"shape": "flat", "base_kw": 1, "peak_kw": 2}}],
    })
    report, messages = await simulate(scenario, duration="1h")
    readings = by_kind(messages)[TopicKind.READINGS]
    assert report.readings_published == 3600 * 9
    assert len(readings) == report.messages_published > 1
    for _, payload, *_ in readings:
        assert len(json.loads(payload)["readings"]) <= MAX_READINGS_PER_MESSAGE
        assert len(payload) < 1_000_000


async def test_duplicates_and_malformed_messages():
    scenario = load_scenario().with_overrides(duplicate_message_rate=0.2, malformed_message_rate=0.2)
    report, messages = await simulate(scenario, duration="3h")
    clean, _ = await simulate(duration="3h")
    assert report.duplicates_published > 0
    assert report.malformed_published > 0
    assert report.records == clean.records  # faults never change the valid data
    assert report.counts == clean.counts
    readings = by_kind(messages)[TopicKind.READINGS]
    assert len(readings) == report.messages_published + report.duplicates_published + report.malformed_published
    payload_counts = Counter(p for _, p, *_ in readings)
    assert sum(n - 1 for n in payload_counts.values()) == report.duplicates_published
    rejected_whole, accepted_unique = 0, 0
    for payload, topic in {p: t for t, p, *_ in readings}.items():
        decoded = decode_readings(parse_topic(topic), payload, now=NOW)
        accepted_unique += len(decoded.readings)
        if decoded.rejections:
            assert decoded.readings == []
            rejected_whole += 1
    assert rejected_whole == report.malformed_published
    assert accepted_unique == report.readings_published
    reasons = set()
    for topic, payload, *_ in readings:
        reasons |= {r.reason.value for r in decode_readings(parse_topic(topic), payload, now=NOW).rejections}
    assert reasons == {"invalid_json", "unknown_metric", "unit_mismatch"}


async def test_progress_reaches_the_total():
    calls = []
    report, _ = await simulate(duration="2h", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (7200.0, 7200.0)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert len(calls) == 9  # a partial quarter hour, 7 full ones, a partial one at the end
    assert report.records is not None


async def test_record_off_keeps_nothing():
    report, _ = await simulate(record=False, duration="30m")
    assert report.records is None
    assert report.readings_published > 0


async def test_speed_paces_the_batches():
    sink = ListSink()
    report = await publish_simulation(load_scenario(), sink, duration="2h", speed=7200 / 0.3, seed=1, now=NOW)
    assert 0.28 <= report.wall_time_s < 2.0


async def test_negative_speed_is_refused():
    with pytest.raises(ValueError, match="speed"):
        await publish_simulation(load_scenario(), ListSink(), duration="1h", speed=-1, seed=1)


async def test_a_failing_sink_stops_the_run():
    class Broken(ListSink):
        async def publish(self, topic, payload, *, qos, retain):
            await super().publish(topic, payload, qos=qos, retain=retain)
            if len(self.messages) > 50:
                raise ConnectionError("broker went away")

    with pytest.raises(ConnectionError, match="went away"):
        await publish_simulation(load_scenario(), Broken(), duration="1d", speed=0, seed=1, max_in_flight=4)


async def test_report_lists_ev_sessions_and_their_unmet_energy():
    data = load_scenario().with_overrides(extra_meters=0).model_dump(mode="python")
    data["dispatch"] = {"ev_chargers": [{"start_hour": 0, "end_hour": 24, "max_power_kw": 0}]}  # charging banned
    report, _ = await simulate(Scenario.model_validate(data), duration="1d", record=False)
    assert report.ev_sessions
    assert all(s.delivered_kwh == 0 and s.unmet_kwh == s.requested_kwh for s in report.ev_sessions)
    unmet = report.ev_unmet_energy_kwh
    assert sum(unmet.values()) == pytest.approx(sum(s.requested_kwh for s in report.ev_sessions))
    assert set(unmet) <= {"ev-dc-1", "ev-dc-2", "ev-ac-1", "ev-ac-2"}
    rows = dict(report.summary())
    assert rows["EV sessions ended / unmet energy"] == f"{len(report.ev_sessions)} / {sum(unmet.values()):.3f} kWh"
    free, _ = await simulate(duration="1d", record=False)
    assert free.ev_sessions
    assert sum(free.ev_unmet_energy_kwh.values()) == 0
