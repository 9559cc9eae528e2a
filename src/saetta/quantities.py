"""Stage: foundation (layer 0) — reading and writing quantities: 1 PB, 90 min, 2 GB, 5e11 events.

One grammar for every size, duration and count saetta reads (a use case's
requirement, ``--cache-size``, a testbed's ``startup_timeout``, ``runs clean
--older-than``): a positive number and a unit, decimal (kB, MB) or binary (KiB,
MiB). Where a bare number is allowed (``plain_number=True``) it is bytes or
seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from saetta.errors import QuantityError

__all__ = [
    "format_bytes",
    "format_count",
    "format_duration",
    "format_rate",
    "parse_bytes",
    "parse_count",
    "parse_data",
    "parse_duration",
]


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_BYTES = {"b": 1.0} | {
    unit: base**power
    for power, prefix in enumerate("kmgtpe", start=1)
    for unit, base in ((f"{prefix}b", 1e3), (f"{prefix}ib", 2.0**10))
}
_SECONDS = {
    **dict.fromkeys(("ms", "msec"), 1e-3),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_EVENTS = {"", "event", "events", "ev", "evt"}


def _quantity(
    value: object,
    field_name: str,
    units: Mapping[str, float] | set[str],
    example: str,
    plain_number: bool = False,
) -> float:
    number, unit = math.nan, ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and (found := _QUANTITY.match(value)):
        number, unit = float(found.group(1)), found.group(2).lower()
    if isinstance(units, Mapping) and plain_number:
        units = {**units, "": 1.0}
    if not (math.isfinite(number) and number > 0) or unit not in units:
        msg = f"{field_name}: cannot read {value!r}; expected a positive quantity like {example!r}"
        raise QuantityError(msg)
    return number * units[unit] if isinstance(units, Mapping) else number


def parse_bytes(value: object, field_name: str = "size", *, plain_number: bool = False) -> float:
    """Bytes in ``"1 PB"``, ``"512 MB"``, ``"2 GiB"`` (decimal and binary units; a unit is
    required unless ``plain_number``).

    Raises
    ------
    QuantityError
        Not a positive size with a unit; the message names ``field_name``.

    Examples
    --------
    >>> parse_bytes("2 GB"), parse_bytes("1 KiB")
    (2000000000.0, 1024.0)
    """
    return _quantity(value, field_name, _BYTES, "2 GB", plain_number)


def parse_duration(value: object, field_name: str = "time", *, plain_number: bool = False) -> float:
    """Seconds in ``"1 h"``, ``"90 min"``, ``"3600 s"``, ``"2 days"`` (a unit is required
    unless ``plain_number``).

    Examples
    --------
    >>> parse_duration("90 min")
    5400.0
    """
    return _quantity(value, field_name, _SECONDS, "90 min", plain_number)


def parse_count(value: object, field_name: str = "events") -> float:
    """A number of events: ``5e11``, ``"5e11"``, ``"2.5e6 events"``.

    Examples
    --------
    >>> parse_count("2.5e6 events")
    2500000.0
    """
    return _quantity(value, field_name, _EVENTS, "2.5e6 events")


def parse_data(value: object, field_name: str = "data") -> tuple[float | None, float | None]:
    """``(events, bytes)`` of a data volume given as a size (``"1 PB"``) or as events.

    Exactly one of the two is not None.

    Examples
    --------
    >>> parse_data("500 TB")
    (None, 500000000000000.0)
    >>> parse_data("2.5e6 events")
    (2500000.0, None)
    """
    found = _QUANTITY.match(value) if isinstance(value, str) else None
    if found and found.group(2).lower() in _BYTES:
        return None, parse_bytes(value, field_name)
    if found and found.group(2).lower() in _EVENTS - {""}:
        return parse_count(value, field_name), None
    msg = f"{field_name}: cannot read {value!r}; expected a size ('1 PB') or events ('5e11 events')"
    raise QuantityError(msg)


def format_bytes(size: float) -> str:
    """A size in decimal units, three significant digits: ``"1 PB"``, ``"2.5 GB"``."""
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size / 1e3:.3g} kB" if size >= 1e3 else f"{size:.3g} B"


def format_duration(seconds: float) -> str:
    """A duration for people: ``"450 ms"``, ``"12.3 s"``, ``"4 min 10 s"``, ``"1 h 23 min"``."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if seconds < 4 * 86400:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{seconds / 86400:.3g} days"


def format_count(count: float) -> str:
    """``"1,234,567"`` below ten million, ``"7.69e+12"`` above."""
    return f"{count:.3g}" if count >= 1e7 else f"{count:,.0f}"


def format_rate(rate_hz: float) -> str:
    """``"283 k events/s"``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate_hz >= scale:
            return f"{rate_hz / scale:.3g} {unit} events/s"
    return f"{rate_hz:.3g} events/s"
