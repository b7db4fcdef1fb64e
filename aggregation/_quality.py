"""Interval quality: the per-interval quality code and the bit flags that say why.

``interval_energy.quality`` reuses :class:`schemas.Quality` (0 actual, 1 estimated, 2 suspect): an
interval is *estimated* as soon as any part of its energy was estimated, and *suspect* when a reading
behind it was flagged suspect by the device. ``interval_energy.flags`` is a bit set of
:class:`IntervalFlag` giving the reasons, so an auditor can see what VEE did to every interval. The last
three bits name a meter event the operator recorded (``parkpulse meter-event``): they explain a register
drop or change of scale that was computed exactly, so they never make an interval estimated.
"""

from __future__ import annotations

from enum import IntFlag


class IntervalFlag(IntFlag):
    """Why an interval's energy is what it is (bits of ``interval_energy.flags``)."""

    SPLIT = 1                 # readings off the interval boundaries: a delta was split proportionally in time
    GAP_LINEAR = 2            # inside a gap <= linear limit: register interpolated linearly (or power, if unknown)
    GAP_LIKE_DAY = 4          # inside a longer gap: like-day profile
    ROLLOVER = 8              # the register wrapped at its maximum inside this interval
    EPOCH_BREAK = 16          # register reset or meter replaced: energy across the break estimated
    SPIKE = 32                # implausible jump (above max rate x dt): energy estimated, not the jump
    OUTLIER_DROPPED = 64      # a glitch reading (undone by the register within a few readings) was ignored
    JITTER = 128              # a decrease within one register step was taken as zero
    SCALED = 256              # estimates were scaled so the intervals sum to the bracketing register delta
    PARTIAL = 512             # readings cover only part of the interval (usually the newest interval)
    NO_BASIS = 1024           # nothing to estimate from (no neighbours, no like days): energy 0 assumed
    DEVICE_ESTIMATED = 2048   # the device itself marked a reading estimated
    DEVICE_SUSPECT = 4096     # the device itself marked a reading suspect
    METER_REPLACED = 8192     # the energy spans a recorded meter replacement: old final and new initial used exactly
    RESET_CONFIRMED = 16384   # the energy spans a reset the operator confirmed: the drop is exact, not estimated
    RATIO_CHANGE = 32768      # the energy spans a recorded CT/PT ratio change: each side uses its own multiplier


def describe_flags(flags: int) -> list[str]:
    """Names of the bits set in ``flags``, lower case, in bit order (for reports and logs)."""
    return [f.name.lower() for f in IntervalFlag if f.name is not None and flags & f]
