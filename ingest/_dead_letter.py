"""The last resort for a message the database refuses even as a quarantine record: a local file.

One JSON object per line (``received_at``, ``topic``, ``reason``, ``detail``, ``raw_b64``), appended and
fsynced before the message is acknowledged, in ``{dir}/{client_id}-{UTC date}.jsonl``. An operator can
read the file with any JSON tool, and once the database accepts the messages, move them into the
quarantine table with ``parkpulse quarantine restore-dead-letters FILE``. A message is lost only if this
write fails too, and then it is not acknowledged: the broker keeps it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ingest.errors import DeadLetterError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that could not be stored, as written to the file."""

    received_at: datetime
    topic: str
    reason: str
    detail: str
    raw: bytes

    def to_json(self) -> str:
        """The JSON line (ASCII-only, so any editor and terminal shows it safely)."""
        return json.dumps({"received_at": self.received_at.isoformat(), "topic": self.topic, "reason": self.reason,
                           "detail": self.detail, "raw_b64": base64.b64encode(self.raw).decode("ascii")},
                          ensure_ascii=True)

    @classmethod
    def from_json(cls, line: str) -> DeadLetter:
        """Parse one line written by :meth:`to_json`; raises ValueError/KeyError on anything else."""
        obj = json.loads(line)
        return cls(datetime.fromisoformat(obj["received_at"]), str(obj["topic"]), str(obj["reason"]),
                   str(obj["detail"]), base64.b64decode(obj["raw_b64"], validate=True))


def write_dead_letters(directory: Path, client_id: str, letters: list[DeadLetter]) -> Path:
    """Append ``letters`` to today's file and fsync it; raises :class:`DeadLetterError` on failure."""
    if not letters:
        raise DeadLetterError("nothing to write")
    day = letters[0].received_at.strftime("%Y-%m-%d")
    path = directory / f"{client_id}-{day}.jsonl"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="ascii") as fh:
            fh.writelines(letter.to_json() + "\n" for letter in letters)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise DeadLetterError(f"cannot write the dead-letter file {path}: {exc}") from exc
    return path


def read_dead_letters(path: Path) -> list[DeadLetter]:
    """Every message in a dead-letter file, in order."""
    return [DeadLetter.from_json(line) for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
