"""Fault injection: deterministic decisions about which messages go out broken or twice.

Each device draws from its own ``random.Random(f"{seed}/faults/{device_id}")``, separate from the
physics, so switching faults on never changes the simulated values. New faults (outages with backlog,
counter resets, clock skew) slot in as more fields of :class:`MessageFaults` and more rates in
:class:`~simulators._scenario.FaultSpec`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulators._messages import MalformedKind
from simulators._scenario import FaultSpec

_MALFORMED_KINDS = tuple(MalformedKind)


@dataclass(frozen=True, slots=True)
class MessageFaults:
    """What happens around one valid readings message."""

    duplicate: bool = False                  # publish the identical bytes a second time
    malformed: MalformedKind | None = None   # publish one extra invalid message after it


NO_FAULTS = MessageFaults()


class FaultInjector:
    """Decides, per device and message, which faults to inject at the scenario's rates."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._rngs: dict[str, random.Random] = {}
        self.enabled = spec.duplicate_message_rate > 0 or spec.malformed_message_rate > 0

    def decide(self, device_id: str) -> MessageFaults:
        """The faults for the device's next valid message."""
        if not self.enabled:
            return NO_FAULTS
        rng = self._rngs.get(device_id)
        if rng is None:
            rng = self._rngs[device_id] = random.Random(f"{self.seed}/faults/{device_id}")
        duplicate = rng.random() < self.spec.duplicate_message_rate
        malformed = rng.choice(_MALFORMED_KINDS) if rng.random() < self.spec.malformed_message_rate else None
        return MessageFaults(duplicate, malformed)
