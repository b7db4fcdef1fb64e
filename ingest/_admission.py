"""Who may write, and which instance stores what (pure: no I/O, no clock).

* :class:`RegistryView` is a snapshot of the registry that ingest enforces: a message is admitted only
  for a registered device of a registered park, or for any device of a park set to auto-register. The
  service refreshes the snapshot from the database; everything else is quarantined as ``unregistered``
  and can be replayed once the operator has registered the device.
* :func:`partition_of` splits the devices between ingest instances. Every instance holds a plain
  (non-shared) persistent subscription, which Mosquitto restores after a restart, and stores only the
  devices of its own partition; the rest it acknowledges without storing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import Enum


class Admission(Enum):
    """What the registry says about one (park, device)."""

    REGISTERED = "registered"        # a known device of a known park
    AUTO_REGISTER = "auto_register"  # unknown device of a park that lets ingest create devices
    UNREGISTERED = "unregistered"    # unknown park, or unknown device of a park that does not


@dataclass(slots=True)
class RegistryView:
    """Registered parks (with their auto-register flag) and devices, as of the last refresh."""

    parks: dict[str, bool] = field(default_factory=dict)   # park_id → auto_register
    devices: set[tuple[str, str]] = field(default_factory=set)
    version: int = 0  # bumped on every refresh, so a batch can tell it was classified against an older one

    def replace(self, other: RegistryView) -> None:
        """Take ``other``'s contents in place (batches hold this object) and bump the version."""
        self.parks, self.devices = other.parks, other.devices
        self.version += 1

    def admit(self, park_id: str, device_id: str) -> Admission:
        """Classify one sender; O(1), called once per message."""
        if (park_id, device_id) in self.devices:
            return Admission.REGISTERED
        if self.parks.get(park_id):
            return Admission.AUTO_REGISTER
        return Admission.UNREGISTERED

    def explain(self, park_id: str, device_id: str) -> str:
        """Why a sender is unregistered, with the command that fixes it."""
        if park_id not in self.parks:
            return (f"park {park_id!r} is not registered; register it with `parkpulse registry park add "
                    f"{park_id}` (add --auto-register to accept its devices on first sight), then replay with "
                    f"`parkpulse quarantine replay --park {park_id} --reason unregistered`")
        return (f"device {device_id!r} is not registered in park {park_id!r}, which does not auto-register "
                f"devices; register it with `parkpulse registry device add {park_id} {device_id}`, then replay "
                f"with `parkpulse quarantine replay --park {park_id} --reason unregistered`")


class OpenRegistry(RegistryView):
    """A view that trusts every sender: for trusted callers (tests, tools) that write known parks directly.

    Unknown devices are created as if their park auto-registered; the park itself must exist.
    """

    def admit(self, park_id: str, device_id: str) -> Admission:
        """Every sender is admitted, and created when missing."""
        return Admission.AUTO_REGISTER


def partition_of(park_id: str, device_id: str, count: int) -> int:
    """The partition (0 … count-1) that stores a device's messages: CRC-32 of ``park/device``.

    CRC-32 rather than :func:`hash`: it must agree between processes and across restarts.
    """
    if count <= 1:
        return 0
    return zlib.crc32(f"{park_id}/{device_id}".encode()) % count


def partition_of_topic(topic: str, count: int) -> int | None:
    """The partition of a concrete topic ``parkpulse/v1/{park}/{device}/{kind}``, or None if malformed.

    Malformed topics belong to no partition; partition 0 quarantines them so they are kept once.
    """
    parts = topic.split("/", 4)
    if len(parts) != 5:
        return None
    return partition_of(parts[2], parts[3], count)
