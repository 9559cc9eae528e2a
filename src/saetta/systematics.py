"""Stage: events (layer 4) — systematic variations, all in the one pass over the data.

A measurement needs its histograms again under each systematic variation. Two
kinds exist, and both are evaluated on the same unit's events, in memory, not
in another pass over the files:

- an *object variation* changes the events themselves (jet pT scaled by 3 %,
  smeared by 5 %): the selection runs again on the varied events;
- a *weight variation* changes only the event weights (a b-tag scale factor up,
  a normalisation ±2.5 %): it reuses the nominal selection, with the nominal
  weight times a per-event factor.

Declaring them is a mapping from name to function; :func:`object_variants` and
:func:`weight_variants` give them back, nominal first::

    OBJECTS = {
        "nominal": None,
        "pt_scale_up": scale("Jet", "pt", 1.03),
        "pt_res_up": smear("Jet", "pt", 0.05),
    }
    WEIGHTS = {
        "btag_up": lambda selected: 1 + 0.075 * selected.lead_pt / 50,
        "btag_down": lambda selected: 1 - 0.075 * selected.lead_pt / 50,
    }

    def analysis(events):
        out = {"nominal": hist(), **{name: hist() for name in [*OBJECTS, *WEIGHTS][1:]}}
        for name, varied in object_variants(events, OBJECTS):
            selected = select(varied)             # the analysis' own selection
            weights = nominal_weights[selected.mask]
            variations = WEIGHTS if name == "nominal" else {}
            for wname, w in weight_variants(weights, selected, variations, prefix=name):
                out[wname].fill(selected.observable, weight=w)
        return out

Random variations must not depend on how the events were cut into units, nor on
the executor, nor on the order units ran in. :func:`event_normal` draws from a
counter-based generator keyed by each event's ``(run, luminosityBlock, event)``
and the object's index in its event, so the same jet of the same event always
gets the same number. The generator, exactly (all arithmetic modulo 2^64):

- ``mix(x)`` is SplitMix64's finaliser: ``z = x + 0x9E3779B97F4A7C15;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
  return z ^ (z >> 31)``;
- ``stream`` is the first 8 bytes, little-endian, of ``sha256(name)`` for the
  variation's name (UTF-8);
- an event's key is ``mix(mix(mix(mix(stream) ^ run) ^ luminosityBlock) ^ event)``;
- object ``j`` (0-based, in file order) of the event gets ``h1 = mix(key + 2j)``
  and ``h2 = mix(key + 2j + 1)``, ``u1 = (h1 >> 11) / 2^53``, ``u2 = (h2 >> 11) / 2^53``,
  and the standard normal ``sqrt(-2 ln(1 - u1)) · cos(2π u2)`` (Box–Muller; ``1 - u1``
  is exact). ``ln`` and ``cos`` are numpy's: the same bits on every host with the
  same numpy build and CPU features; another libm may differ in the last bit.

Files without ``run``, ``luminosityBlock`` or ``event`` use 0 for the missing ones
(then only ``event`` tells events apart: give files such numbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import awkward as ak
import numpy as np

__all__ = [
    "event_normal",
    "object_variants",
    "scale",
    "smear",
    "splitmix64",
    "stream_of",
    "weight_variants",
]

ObjectVariation = Callable[[Any], Any] | None
WeightVariation = Callable[[Any], Any]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def object_variants(
    events: Any, variations: Mapping[str, ObjectVariation]
) -> Iterator[tuple[str, Any]]:
    """``(name, varied events)`` for each object variation; ``None`` means the events as
    they are (the nominal). Each varied copy is made when its turn comes, so only one
    lives at a time."""
    for name, vary in variations.items():
        yield name, events if vary is None else vary(events)


def weight_variants(
    nominal: np.ndarray,
    context: Any,
    variations: Mapping[str, WeightVariation],
    *,
    prefix: str = "nominal",
) -> Iterator[tuple[str, np.ndarray]]:
    """``(prefix, nominal)``, then ``(name, nominal × factor)`` for each weight variation,
    where ``factor = variation(context)``: one number per event, or a scalar."""
    nominal = np.asarray(nominal, dtype=np.float64)
    yield prefix, nominal
    for name, factor in variations.items():
        yield name, nominal * np.asarray(factor(context), dtype=np.float64)


def scale(collection: str, field: str, factor: float) -> Callable[[Any], Any]:
    """An object variation: ``events[collection][field]`` times ``factor``, in double
    precision (a float32 product could round onto a cut)."""

    def vary(events: Any) -> Any:
        objects = events[collection]
        varied = ak.values_astype(objects[field], np.float64) * factor
        return ak.with_field(events, ak.with_field(objects, varied, field), collection)

    vary.__qualname__ = f"scale({collection!r}, {field!r}, {factor!r})"
    return vary


def smear(
    collection: str, field: str, resolution: float, *, name: str | None = None
) -> Callable[[Any], Any]:
    """An object variation: ``events[collection][field]`` times ``1 + resolution · z``, with
    ``z`` from :func:`event_normal` of the stream ``name`` (default ``"collection.field"``)."""
    stream = stream_of(name or f"{collection}.{field}")

    def vary(events: Any) -> Any:
        objects = events[collection]
        values = objects[field]
        counts = np.asarray(ak.num(values, axis=1))
        z = event_normal(events, counts, stream)
        smeared = ak.unflatten(np.asarray(ak.flatten(values)) * (1.0 + resolution * z), counts)
        return ak.with_field(events, ak.with_field(objects, smeared, field), collection)

    vary.__qualname__ = f"smear({collection!r}, {field!r}, {resolution!r})"
    return vary


def stream_of(name: str) -> int:
    """The generator stream of a variation's name (see the module docstring)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def event_normal(events: Any, counts: np.ndarray, stream: int) -> np.ndarray:
    """Standard normal numbers, ``counts[i]`` for event ``i``, flat, keyed by each event's
    ``(run, luminosityBlock, event)`` and the object's index (see the module docstring)."""
    n = len(counts)
    ids = [_event_ids(events, name, n) for name in ("run", "luminosityBlock", "event")]
    with np.errstate(over="ignore"):
        key = splitmix64(np.full(n, stream, dtype=np.uint64))
        for column in ids:
            key = splitmix64(key ^ column)
        counts = np.asarray(counts, dtype=np.int64)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        index = np.arange(starts[-1], dtype=np.int64) - np.repeat(starts[:-1], counts)
        base = np.repeat(key, counts) + np.uint64(2) * index.astype(np.uint64)
        h1 = splitmix64(base)
        h2 = splitmix64(base + np.uint64(1))
    u1 = (h1 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    normal: np.ndarray = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
    return normal


def _event_ids(events: Any, name: str, n: int) -> np.ndarray:
    if name not in events.fields:
        return np.zeros(n, dtype=np.uint64)
    return np.asarray(events[name]).astype(np.uint64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64: a well-mixed 64-bit hash of each value."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out
