"""The SQLite outbox: order, sequence numbers, bounded size with counted drops, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.errors import OutboxError
from edge.outbox import FullPolicy, NewMessage, Outbox, read_stats


def _msg(device: str, n: int = 2, size: int = 10) -> NewMessage:
    return NewMessage(device, b"[" + b"0" * (size - 2) + b"]", n)


def test_fifo_per_device_with_persistent_sequence_numbers(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        result = box.enqueue([_msg("a"), _msg("b"), _msg("a")])
        assert result.seqs == (0, 0, 1)
        assert [m.seq for m in box.fetch("a")] == [0, 1]
        assert box.ack([box.fetch("a")[0].id]) == 1
    with Outbox(path) as box:  # reopen: the sequence continues, the unacked row is still there
        assert box.enqueue([_msg("a")]).seqs == (2,)
        assert [m.seq for m in box.fetch("a")] == [1, 2]
        stats = box.stats()
        assert (stats.pending_messages, stats.pending_readings) == (3, 6)
        assert (stats.enqueued_messages, stats.published_messages) == (4, 1)
        assert box.integrity_check() == "ok"


def test_fetch_window_for_live_and_backlog_lanes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue([_msg("a") for _ in range(5)])
        floor = box.max_id()
        box.enqueue([_msg("a") for _ in range(2)])
        assert [m.seq for m in box.fetch("a", after_id=floor)] == [5, 6]           # live
        assert [m.seq for m in box.fetch("a", up_to_id=floor, limit=3)] == [0, 1, 2]  # backlog, oldest first
        assert box.device_backlog("a") == 7


def test_drop_oldest_when_full_is_counted_and_leaves_a_seq_gap(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=3, policy=FullPolicy.DROP_OLDEST) as box:
        box.enqueue([_msg("a", n=4) for _ in range(3)])
        result = box.enqueue([_msg("a", n=4), _msg("a", n=4)])
        assert (result.dropped_messages, result.dropped_readings) == (2, 8)
        assert [m.seq for m in box.fetch("a")] == [2, 3, 4]   # seq 0 and 1 are gone: ingest sees the gap
        stats = box.stats()
        assert (stats.pending_messages, stats.dropped_messages, stats.dropped_readings) == (3, 2, 8)


def test_drop_oldest_by_bytes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_bytes=250, policy=FullPolicy.DROP_OLDEST) as box:
        box.enqueue([_msg("a", size=100), _msg("a", size=100)])
        box.enqueue([_msg("a", size=100)])  # 300 bytes > 250: the oldest 100 go
        stats = box.stats()
        assert (stats.pending_messages, stats.pending_bytes, stats.dropped_messages) == (2, 200, 1)


def test_drop_newest_refuses_new_messages(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=2, policy=FullPolicy.DROP_NEWEST) as box:
        box.enqueue([_msg("a"), _msg("a")])
        result = box.enqueue([_msg("a", n=5)])
        assert (result.ids, result.seqs, result.dropped_messages, result.dropped_readings) == ((), (2,), 1, 5)
        assert [m.seq for m in box.fetch("a")] == [0, 1]
        assert box.stats().dropped_readings == 5


def test_ack_of_ids_already_dropped_is_harmless(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_messages=1) as box:
        first = box.enqueue([_msg("a")]).ids[0]
        box.enqueue([_msg("a")])  # drops `first`
        assert box.ack([first]) == 0
        assert box.stats().published_messages == 0


def test_one_process_per_outbox_file(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        box.enqueue([_msg("a")])
        with pytest.raises(OutboxError, match="in use"):
            Outbox(path)
        assert read_stats(path).pending_messages == 1  # the CLI reads while the agent holds the lock
    with pytest.raises(OutboxError, match="no outbox"):
        read_stats(tmp_path / "missing.sqlite")


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from edge.outbox import NewMessage, Outbox
    box = Outbox(Path(sys.argv[1]))
    total = 0
    while True:
        batch = [NewMessage(f"d{i % 3}", b"[1,2,3]", 3) for i in range(50)]
        box.enqueue(batch)
        total += len(batch)
        print(total, flush=True)
""")


def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    committed = 0
    with subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            committed = int(line)
            if committed >= 2000:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Outbox(path) as box:  # the lock was released by the kernel; the WAL is recovered
        assert box.integrity_check() == "ok"
        stats = box.stats()
        # every batch reported as committed is there, and batches are all or nothing (the writer may commit a
        # few more between the last line read and the kill, more on a loaded machine)
        assert stats.pending_messages >= committed
        assert stats.pending_messages % 50 == 0
        assert stats.pending_messages == stats.enqueued_messages
        assert stats.pending_readings == 3 * stats.pending_messages
        for device in ("d0", "d1", "d2"):
            seqs = [m.seq for m in box.fetch(device, limit=10_000)]
            assert seqs == list(range(len(seqs)))  # contiguous: no hole from the crash
            assert box.enqueue([_msg(device)]).seqs == (len(seqs),)  # and it continues after the restart
