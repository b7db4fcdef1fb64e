"""Units of measure and the only place where ParkPulse converts between them.

Every quantity in the system carries an explicit unit. Devices may report in any unit listed here; the
ingest path converts each value to the canonical unit of its metric with :func:`to_canonical`, so the
database holds one unit per metric and downstream code never guesses.

Factors are exact SI relations (1 kWh = 3.6 MJ, 1 GJ = 1000 MJ). Temperature is affine and only
converted between identical units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.errors import UnitError


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit symbol, its physical dimension and its factor to the dimension's base unit."""

    symbol: str
    dimension: str
    to_base: float


_UNITS: Final[tuple[Unit, ...]] = (
    # energy, base MJ
    Unit("Wh", "energy", 0.0036),
    Unit("kWh", "energy", 3.6),
    Unit("MWh", "energy", 3600.0),
    Unit("MJ", "energy", 1.0),
    Unit("GJ", "energy", 1000.0),
    Unit("J", "energy", 0.000001),      # CJ/T 188 heat meters' unit codes 01H, 0BH
    Unit("kJ", "energy", 0.001),
    # reactive energy, base kvarh
    Unit("kvarh", "reactive_energy", 1.0),
    # power, base kW
    Unit("W", "power", 0.001),
    Unit("kW", "power", 1.0),
    Unit("MW", "power", 1000.0),
    Unit("kvar", "reactive_power", 1.0),
    Unit("kVA", "apparent_power", 1.0),
    # electrical
    Unit("V", "voltage", 1.0),
    Unit("kV", "voltage", 1000.0),
    Unit("A", "current", 1.0),
    Unit("Hz", "frequency", 1.0),
    # volume, base m3
    Unit("m3", "volume", 1.0),
    Unit("L", "volume", 0.001),
    Unit("m3/h", "volume_flow", 1.0),
    Unit("L/s", "volume_flow", 3.6),
    Unit("L/h", "volume_flow", 0.001),  # CJ/T 188 unit code 32H
    # temperature (affine: same-unit only)
    Unit("degC", "temperature", 1.0),
    Unit("K", "temperature", 1.0),
    # time, base h (a heat meter's working time)
    Unit("h", "time", 1.0),
    # dimensionless
    Unit("1", "ratio", 1.0),
    Unit("%", "ratio", 0.01),
    Unit("state", "state", 1.0),
)

UNITS: Final[dict[str, Unit]] = {u.symbol: u for u in _UNITS}

#: Energy conversions used by indicator arithmetic (exact, so not vintage data).
MJ_PER_KWH: Final = 3.6
MJ_PER_GJ: Final = 1000.0
KWH_PER_MWH: Final = 1000.0


def get_unit(symbol: str) -> Unit:
    """Return the :class:`Unit` for ``symbol`` or raise :class:`UnitError` when it is unknown."""
    try:
        return UNITS[symbol]
    except KeyError:
        raise UnitError(symbol, "unknown unit") from None


def conversion_factor(from_symbol: str, to_symbol: str) -> float:
    """Multiplier that turns a value in ``from_symbol`` into ``to_symbol``.

    Raises :class:`UnitError` when either unit is unknown, the dimensions differ, or the conversion would
    be affine (temperatures in different units).
    """
    if from_symbol == to_symbol:
        get_unit(from_symbol)
        return 1.0
    src, dst = get_unit(from_symbol), get_unit(to_symbol)
    if src.dimension != dst.dimension:
        raise UnitError(from_symbol, f"is {src.dimension}, expected {dst.dimension} ({to_symbol})")
    if src.dimension == "temperature":
        raise UnitError(from_symbol, f"affine conversion to {to_symbol} is not supported")
    return src.to_base / dst.to_base


def convert(value: float, from_symbol: str, to_symbol: str) -> float:
    """Convert ``value`` from one unit to another of the same dimension."""
    return value * conversion_factor(from_symbol, to_symbol)
