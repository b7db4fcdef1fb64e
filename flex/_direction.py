"""DR event direction and the words people use for it: the one alias table of ParkPulse.

In grid terms an event is ``up`` (up-regulation: the park *reduces* its load, 削峰, peak shaving) or
``down`` (down-regulation: the park *increases* its load, 填谷, valley filling). Operators and utility
staff rarely say "up" for a load reduction, so every place that takes a direction (CLI options, API query
parameters) accepts the aliases below, and every output prints the meaning next to the canonical word,
e.g. ``up (load reduction, 削峰)``. Only ``up``/``down`` are stored.

This module is deliberately free of heavy imports: the CLI uses it while building its options.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Direction(StrEnum):
    """Event direction in grid terms: ``up`` = load reduction (削峰), ``down`` = load increase (填谷)."""

    UP = "up"
    DOWN = "down"

    @property
    def meaning(self) -> str:
        """What the direction asks of the park, in English and Chinese (``load reduction, 削峰``)."""
        return MEANINGS[self]

    @property
    def label(self) -> str:
        """The canonical word with its meaning, as printed in tables: ``up (load reduction, 削峰)``."""
        return f"{self.value} ({self.meaning})"


MEANINGS: Final[dict[Direction, str]] = {
    Direction.UP: "load reduction, 削峰",
    Direction.DOWN: "load increase, 填谷",
}

#: Every accepted spelling (after :func:`_normalise`) → direction. The canonical words come first.
ALIASES: Final[dict[str, Direction]] = {
    "up": Direction.UP,
    "reduce": Direction.UP,
    "reduction": Direction.UP,
    "load-reduction": Direction.UP,
    "peak-shaving": Direction.UP,
    "削峰": Direction.UP,
    "down": Direction.DOWN,
    "increase": Direction.DOWN,
    "load-increase": Direction.DOWN,
    "valley-filling": Direction.DOWN,
    "填谷": Direction.DOWN,
}


def _normalise(word: str) -> str:
    # "Peak Shaving", "peak_shaving" and " peak-shaving " are the same word.
    return "-".join(word.strip().lower().replace("_", " ").replace("-", " ").split())


def direction_words(direction: Direction | None = None) -> tuple[str, ...]:
    """The accepted spellings (of one direction, or all), canonical word first."""
    return tuple(word for word, d in ALIASES.items() if direction is None or d is direction)


def parse_direction(word: str | Direction) -> Direction:
    """The direction a word means (``reduce``, ``削峰``, ``Peak_Shaving`` → ``up``).

    Raises ``ValueError`` naming every accepted word when ``word`` is none of them.
    """
    if isinstance(word, Direction):
        return word
    found = ALIASES.get(_normalise(word))
    if found is None:
        raise ValueError(
            f"unknown direction {word!r}; use {' | '.join(direction_words(Direction.UP))} for load reduction, "
            f"{' | '.join(direction_words(Direction.DOWN))} for load increase"
        )
    return found


def direction_help() -> str:
    """One line for CLI and API help texts listing the aliases of both directions."""
    return (f"{', '.join(direction_words(Direction.UP))} = load reduction; "
            f"{', '.join(direction_words(Direction.DOWN))} = load increase")
