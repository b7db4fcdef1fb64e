"""``parkpulse quarantine list|show|replay`` against the real database, and the safe payload views."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ingest._admission import RegistryView
from ingest._payload_view import escape_bytes, escape_text, hexdump, render_payload
from ingest._quarantine import QuarantineEntry, QuarantineFilter
from ingest._replay import MemoryQuarantine, default_batch_factory, prepare
from parkpulse.cli import app
from schemas import ValidationPolicy
from tests.ingest.quarantine_seed import (
    BINARY,
    HOSTILE_JSON,
    RECEIVED,
    count_quarantine,
    count_readings,
    insert_quarantine,
    readings_message,
    register_park,
    seed,
)

runner = CliRunner()


def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["quarantine", *args, "--database-url", database_url],
                           env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def as_json(database_url: str, *args: str) -> dict:
    code, out, err = cli(database_url, *args, "--format", "json")
    assert code == 0, out + err
    return json.loads(out)


# --- pure: what reaches the terminal -------------------------------------------------------------------


def test_escaping_makes_every_dangerous_character_visible():
    assert escape_text("a\x00b\x1b[2Jc\u202ed\\e") == "a\\x00b\\x1b[2Jc\\u202ed\\\\e"
    assert escape_text("line1\nline2\t", multiline=True) == "line1\nline2\t"
    assert escape_text("line1\nline2") == "line1\\x0aline2"
    assert escape_bytes(b"ok \xff\xfe \xe4\xb8\xad") == "ok \\xff\\xfe 中"
    # JSON mode keeps valid JSON that means the same thing
    text = escape_text('{"a": "\u202e\x7f\U000e0001"}', json_escapes=True)
    assert text == '{"a": "\\u202e\\u007f\\udb40\\udc01"}'
    assert json.loads(text) == {"a": "\u202e\x7f\U000e0001"}


def test_payload_views_pick_json_text_or_hex():
    kind, view = render_payload(HOSTILE_JSON)
    assert kind == "json"
    assert '"device": "m-5"' in view
    assert "\\u0000" in view
    assert "\\u001b" in view
    assert "\\u202e" in view
    assert not any(ch in view for ch in "\x00\x1b\u202e")
    kind, view = render_payload(b"device_id,ts\nm-1,2026")
    assert (kind, view) == ("text", "device_id,ts\nm-1,2026")
    kind, view = render_payload(BINARY)
    assert kind == "binary"
    assert view.startswith("00000000  00 ff 1b 5b 32 4a 07 62")
    assert "\x1b" not in view
    # a repeated key would be hidden by re-serialising: shown as text instead
    assert render_payload(b'{"a": 1, "a": 2}')[0] == "text"
    assert hexdump(bytes(100), limit=32).endswith("… 68 more bytes not shown")


def _entry(raw: bytes, *, source: str = "mqtt", truncated: bool = False, park: str = "p1") -> QuarantineEntry:
    return QuarantineEntry(1, RECEIVED, source, f"parkpulse/v1/{park}/m-1/readings", park, "m-1", "unregistered",
                           "x", 1, 0, len(raw) + (10 if truncated else 0), hashlib.sha256(raw).digest(), truncated,
                           raw=raw)


def test_prepare_judges_timestamps_as_of_receipt_and_respects_the_registry():
    old = RECEIVED - timedelta(days=300)
    entry = QuarantineEntry(1, old, "mqtt", "parkpulse/v1/p1/m-1/readings", "p1", "m-1", "unregistered", "x", 3, 0,
                            0, b"", False, raw=readings_message("m-1", 3, received_at=old))
    policy = ValidationPolicy(max_age=timedelta(days=30))
    open_registry = RegistryView(parks={"p1": True})
    assert prepare(entry, policy=policy, registry=open_registry).readings == 3  # as of receipt: fresh
    closed = prepare(entry, policy=policy, registry=RegistryView(parks={"p1": False}))
    assert closed.rejections[0][0] == "unregistered"
    assert closed.readings == 0
    known = prepare(entry, policy=policy, registry=RegistryView(parks={"p1": False}, devices={("p1", "m-1")}))
    assert (known.readings, known.rejections) == (3, [])


async def test_memory_backend_replays_once_and_filters_like_sql():
    backend = MemoryQuarantine(batch_factory=default_batch_factory)
    backend.add(_entry(readings_message("m-1", 2)))
    backend.add(QuarantineEntry(2, RECEIVED, "mqtt", "t", "p1", "m-1", "oversized", "x", 0, 0, 99, b"", True,
                                raw=b"{"))
    first = await backend.replay(QuarantineFilter(park_id="p1"))
    assert first.counts() == {"stored": 1, "rejected": 0, "not_replayable": 1, "error": 0}
    assert (first.stored, first.duplicates) == (2, 0)
    again = await backend.replay(QuarantineFilter(ids=(1,)))
    assert (again.stored, again.duplicates) == (0, 2)
    assert [e.quarantine_id for e in backend.list_records(QuarantineFilter(replayable=False))[0]] == [2]
    assert backend.list_records(QuarantineFilter(outcome="never"))[1] == 0


# --- the commands on the real database ------------------------------------------------------------------


@pytest.mark.services
def test_list_filters_formats_and_summary(database_url: str, park_id: str, db_conn: psycopg.Connection):
    register_park(db_conn, park_id)
    ids = seed(db_conn, park_id)
    db_conn.execute("INSERT INTO quarantine_suppressed VALUES (%s, 'm-1', 'invalid_json', %s, 500, 12345)",
                    (park_id, RECEIVED.replace(second=0)))

    listed = as_json(database_url, "list", "--park", park_id)
    assert listed["total"] == 6
    assert [i["quarantine_id"] for i in listed["items"]] == ids.all[::-1]  # newest first
    first = listed["items"][-1]
    assert first["reason"] == "unregistered"
    assert first["n_rejected"] == 3
    assert first["raw_truncated"] is False
    assert first["raw_sha256"] == hashlib.sha256(readings_message("m-1", 3)).hexdigest()

    def selected(*args: str) -> list[int]:
        return sorted(i["quarantine_id"] for i in as_json(database_url, "list", "--park", park_id, *args)["items"])

    assert selected("--reason", "unregistered") == sorted([ids.unregistered, ids.imported])
    assert selected("--source", "import") == [ids.imported]
    assert selected("--device", "m-1") == sorted([ids.unregistered, ids.truncated])
    assert selected("--not-replayable") == [ids.truncated]
    assert len(selected("--replayable")) == 5
    assert selected("--since", (RECEIVED + timedelta(seconds=4)).isoformat()) == [ids.hostile, ids.binary]
    assert selected("--until", (RECEIVED + timedelta(seconds=1)).isoformat()) == [ids.unregistered]
    assert selected("--outcome", "stored") == []
    assert as_json(database_url, "list", "--park", park_id, "--limit", "2")["total"] == 6

    code, out, _ = cli(database_url, "list", "--park", park_id, "--format", "csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("quarantine_id,received_at,source,topic,park_id,device_id,reason")
    assert len(lines) == 7

    code, out, _ = cli(database_url, "list", "--park", park_id)
    assert code == 0
    assert str(ids.truncated) in out
    assert "oversized" in out
    assert "6 of 6 records" in out
    assert "\x1b" not in out

    summary = as_json(database_url, "list", "--park", park_id, "--summary")
    by_reason = {(g["device_id"], g["reason"]): g["n_messages"] for g in summary["groups"]}
    assert by_reason[("m-1", "unregistered")] == 1
    assert by_reason[("m-1", "oversized")] == 1
    assert summary["suppressed"] == [{
        "kind": "suppressed", "park_id": park_id, "device_id": "m-1", "reason": "invalid_json", "n_messages": 500,
        "n_rejected": None, "n_truncated": None, "n_replayed_stored": None, "n_bytes": 12345,
        "first": summary["suppressed"][0]["first"], "last": summary["suppressed"][0]["last"]}]
    code, out, _ = cli(database_url, "list", "--park", park_id, "--summary")
    assert code == 0
    assert "suppressed" in out
    assert "500" in out

    code, _, err = cli(database_url, "list", "--since", "2026-11-20T08:00")
    assert code == 2
    assert "offset" in err


@pytest.mark.services
def test_show_prints_every_column_and_a_safe_payload(database_url: str, park_id: str, db_conn: psycopg.Connection,
                                                     tmp_path: Path):
    register_park(db_conn, park_id)
    ids = seed(db_conn, park_id)

    code, out, _ = cli(database_url, "show", str(ids.unregistered))
    assert code == 0
    for column in ("quarantine_id", "received_at", "topic", "raw_sha256", "raw_truncated", "replay_outcome"):
        assert column in out
    assert "payload (json, " in out
    assert '"device": "m-1"' in out

    code, out, _ = cli(database_url, "show", str(ids.hostile))
    assert code == 0
    assert "\\u0000" in out
    assert "\\u001b[2J" in out
    assert "\\u202e" in out
    assert not any(ch in out for ch in "\x00\x1b\u202e")

    raw_file = tmp_path / "raw.bin"
    code, out, _ = cli(database_url, "show", str(ids.binary), "--raw-out", str(raw_file))
    assert code == 0
    assert "payload (binary" in out
    assert "00000000  00 ff 1b 5b" in out
    assert "\x1b" not in out
    assert raw_file.read_bytes() == BINARY

    code, out, _ = cli(database_url, "show", str(ids.truncated))
    assert code == 0
    assert "truncated at capture: 65,536 of 70,051 bytes kept" in out

    code, _, err = cli(database_url, "show", "999999999999")
    assert code == 1
    assert "no quarantine record 999999999999; list them with `parkpulse quarantine list`" in err


@pytest.mark.services
def test_replay_stores_once_and_records_every_outcome(database_url: str, park_id: str, db_conn: psycopg.Connection):
    register_park(db_conn, park_id)
    ids = seed(db_conn, park_id)

    dry = as_json(database_url, "replay", "--park", park_id, "--dry-run")
    assert dry["dry_run"] is True
    assert dry["counts"]["stored"] == 2
    assert count_readings(db_conn, park_id) == 0
    assert db_conn.execute("SELECT count(*) FROM quarantine WHERE park_id = %s AND replayed_at IS NOT NULL",
                           (park_id,)).fetchone() == (0,)

    first = as_json(database_url, "replay", "--park", park_id)
    results = {r["quarantine_id"]: r for r in first["results"]}
    assert [r["quarantine_id"] for r in first["results"]] == ids.all  # oldest first
    assert first["counts"] == {"stored": 2, "rejected": 3, "not_replayable": 1, "error": 0}
    assert (results[ids.unregistered]["outcome"], results[ids.unregistered]["stored"]) == ("stored", 3)
    assert (results[ids.imported]["outcome"], results[ids.imported]["stored"]) == ("stored", 2)
    truncated = results[ids.truncated]
    assert truncated["outcome"] == "not_replayable"
    assert truncated["detail"].startswith("raw bytes were truncated at capture (65,536 of 70,051 bytes kept); "
                                          "this message cannot be replayed; have device m-1 resend")
    assert (results[ids.invalid]["outcome"], results[ids.invalid]["reason"]) == ("rejected", "invalid_json")
    assert results[ids.binary]["reason"] == "invalid_utf8"
    assert (first["stored"], first["duplicates"]) == (5, 0)
    assert count_readings(db_conn, park_id) == 5
    assert count_quarantine(db_conn, park_id) == 6  # rejections update the row, never add one

    rows = dict(db_conn.execute("SELECT quarantine_id, replay_outcome FROM quarantine WHERE park_id = %s",
                                (park_id,)).fetchall())
    assert rows == {ids.unregistered: "stored", ids.imported: "stored", ids.truncated: "not_replayable",
                    ids.invalid: "rejected", ids.hostile: "rejected", ids.binary: "rejected"}
    detail = db_conn.execute("SELECT replay_detail FROM quarantine WHERE quarantine_id = %s",
                             (ids.invalid,)).fetchone()
    assert detail is not None
    assert detail[0].startswith("still rejected: invalid_json: ")

    second = as_json(database_url, "replay", str(ids.unregistered), str(ids.imported))
    assert (second["stored"], second["duplicates"]) == (0, 5)
    assert count_readings(db_conn, park_id) == 5

    code, out, _ = cli(database_url, "replay", "--park", park_id, "--reason", "invalid_json")
    assert code == 0  # a rejection is an outcome, not an error
    assert "rejected" in out
    assert "summary" in out


@pytest.mark.services
def test_replay_of_an_unregistered_device_waits_for_registration(database_url: str, park_id: str,
                                                                  db_conn: psycopg.Connection):
    register_park(db_conn, park_id, auto_register=False)
    qid = insert_quarantine(db_conn, park_id=park_id, device_id="m-9", reason="unregistered",
                            raw=readings_message("m-9", 4), n_rejected=4)

    before = as_json(database_url, "replay", "--park", park_id, "--reason", "unregistered")
    assert before["results"][0]["outcome"] == "rejected"
    assert before["results"][0]["reason"] == "unregistered"
    assert count_readings(db_conn, park_id) == 0

    db_conn.execute("INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, 'm-9', 'operator')",
                    (park_id,))
    after = as_json(database_url, "replay", str(qid))
    assert (after["results"][0]["outcome"], after["stored"]) == ("stored", 4)
    assert count_readings(db_conn, park_id) == 4


@pytest.mark.services
def test_replay_needs_a_selection_and_known_ids(database_url: str, park_id: str, db_conn: psycopg.Connection):
    register_park(db_conn, park_id)
    ids = seed(db_conn, park_id)
    code, _, err = cli(database_url, "replay")
    assert code == 2
    assert "--all" in err
    code, _, err = cli(database_url, "replay", str(ids.unregistered), "999999999999")
    assert code == 1
    assert "no quarantine record 999999999999; list them with `parkpulse quarantine list`" in err
    assert count_readings(db_conn, park_id) == 0  # nothing replayed when an id is unknown
    code, _, err = cli(database_url, "replay", str(ids.unregistered), "--park", "other-park")
    assert code == 1
    assert "in park 'other-park'" in err
    code, out, _ = cli(database_url, "replay", "--park", park_id, "--outcome", "stored")
    assert code == 0
    assert "nothing to replay" in out
