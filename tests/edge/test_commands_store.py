"""The edge's command audit database: one row per command id, the stored ack, the override precedence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.commands_store import ALL_DEVICES, CommandAudit
from edge.errors import CommandAuditError

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_a_command_id_is_one_row_and_a_redelivery_returns_the_stored_ack(tmp_path: Path) -> None:
    audit = CommandAudit(tmp_path / "audit.sqlite")
    row, previous = audit.record("bess", "c-1", b"{}", AT, {"action": "set_active_power", "value": -5.0})
    assert previous is None
    again, previous = audit.record("bess", "c-1", b"{}", AT)
    assert (again, previous) == (row, None)  # no ack yet: the command is handled again
    audit.record_ack(row, status="applied", reason=None, detail="", applied_value=-5.0, acked_at=AT, ack=b"ACK")
    assert audit.record("bess", "c-1", b"{}", AT) == (row, b"ACK")
    other, previous = audit.record("hvac", "c-1", b"{}", AT)  # the same id for another device is another command
    assert other != row
    assert previous is None
    rows = audit.commands(device="bess")
    assert [(r.command_id, r.status, r.applied_value, r.deliveries) for r in rows] == [("c-1", "applied", -5.0, 3)]
    assert len(audit.commands()) == 2
    audit.close()


def test_unidentified_payloads_are_kept_as_separate_rows(tmp_path: Path) -> None:
    audit = CommandAudit(tmp_path / "audit.sqlite")
    first, _ = audit.record("bess", None, b"\xff", AT)
    second, _ = audit.record("bess", None, b"\xff", AT)
    assert first != second
    assert audit.commands()[0].action is None


def test_override_of_the_device_is_preferred_over_the_agent_wide_one_and_both_clear(tmp_path: Path) -> None:
    audit = CommandAudit(tmp_path / "audit.sqlite")
    assert audit.override_for("bess") is None
    audit.set_override(ALL_DEVICES, reason="site drill", by="ops", at=AT)
    found = audit.override_for("bess")
    assert found is not None
    assert found.reason == "site drill"
    audit.set_override("bess", reason="PCS maintenance", by="alice", at=AT)
    found = audit.override_for("bess")
    assert found is not None
    assert (found.device, found.reason, found.set_by) == ("bess", "PCS maintenance", "alice")
    assert audit.clear_override("bess", by="alice", at=AT)
    assert not audit.clear_override("bess", by="alice", at=AT)
    assert audit.clear_override(ALL_DEVICES, by="ops", at=AT)
    assert audit.override_for("bess") is None
    assert audit.overrides() == []


def test_an_unwritable_location_says_what_to_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CommandAuditError, match=r"commands\.audit_path"):
        CommandAudit(blocker / "audit.sqlite").overrides()
