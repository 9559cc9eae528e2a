"""Stage: kernels (layer 4) — compiled loops for the hot parts of analyses, and fills.

Columnar code that would materialise every pair or triplet of objects is
written here as a loop over events instead: no intermediate arrays, one pass.
Kernels take plain numpy arrays (a jagged column is ``offsets`` + ``content``)
and compute in double precision.

Kernels are numba functions, but numba is imported only when one is first
called: :func:`jit` returns a stand-in that builds the numba dispatcher then.
Importing numba, setting up its compiler and running its extensions' start-up
code (vector's numba backend) costs over a second, more than a quick query
takes, so analyses that need no kernel (a flat fill) never pay it.

Histogram filling follows ROOT's ``TH1::Fill`` rules exactly: bin
``1 + int(nbins * (x - lo) / (hi - lo))``, ``x < lo`` to underflow, ``x >= hi``
(and NaN) to overflow — so results match ROOT bin for bin, edges included.
:func:`find_bin` is that rule inside kernels; :func:`fill` applies it to an
array with numpy, the same float operations in the same order, so both give
the same bin to every value.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

__all__ = ["delta_phi", "delta_r", "fill", "find_bin", "jit", "mass_of", "p4"]

F = TypeVar("F", bound=Callable[..., Any])

_BLOCK = 1 << 16  # values per numpy pass in fill: its temporaries stay in the CPU cache
_compiling = threading.Lock()  # two threads' first calls must not build two dispatchers


def _by_name(module: str, qualname: str) -> Any:
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _restored(function: Callable[..., Any], filename: str) -> _Kernel:
    # cloudpickle names the file of the code it sends "<dynamic-code>"; numba keys its
    # cache on that file, and on the module, which it records in the cache and imports
    # to load it: a kernel whose module is not importable here (a user's file loaded
    # by path) would write a cache no later process can load, so it is not cached.
    function.__code__ = function.__code__.replace(co_filename=filename)
    cache = function.__module__ in sys.modules and os.path.isfile(filename)
    return _Kernel(function, cache=cache)


class _Kernel:
    """A function to compile with numba, standing in for its dispatcher until first use.

    Called from Python, it builds the dispatcher (importing numba) and forwards
    the call. Named inside another kernel, numba asks it for ``_numba_type_``
    and gets the dispatcher's type, so kernels calling kernels compile as if
    the module globals were dispatchers; the globals never need rebinding.
    Other dispatcher attributes (``signatures``, ``inspect_types``) forward too.
    """

    def __init__(self, function: Callable[..., Any], *, cache: bool = True) -> None:
        functools.update_wrapper(self, function)
        self.py_func = function
        self._cache = cache
        self._dispatcher: Any = None

    @property
    def dispatcher(self) -> Any:
        """The numba dispatcher, built (and numba imported) on first access."""
        if self._dispatcher is None:
            with _compiling:
                if self._dispatcher is None:
                    import numba

                    compile_ = numba.njit(cache=self._cache, nogil=True, error_model="numpy")
                    self._dispatcher = compile_(self.py_func)
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher(*args)

    def __getattr__(self, name: str) -> Any:
        # Only names missing from the instance get here; dunders stay missing so that
        # pickle's and copy's probes do not import numba.
        if name.startswith("__") or name in {"py_func", "_cache", "_dispatcher"}:
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __reduce__(self) -> tuple[Any, ...]:
        # saetta's kernels go by name, so a worker process reuses its own (and numba's
        # on-disk cache); a kernel of the user's, whose module the worker may lack,
        # travels as its Python function (cloudpickle sends that by value).
        if self.__module__.startswith("saetta.") and "<locals>" not in self.__qualname__:
            return _by_name, (self.__module__, self.__qualname__)
        return _restored, (self.py_func, self.py_func.__code__.co_filename)

    def __repr__(self) -> str:
        return f"<saetta kernel {self.__module__}.{self.__qualname__}>"


def jit(function: F) -> F:
    """Compile ``function`` with numba on its first call (``cache``, ``nogil``, numpy errors).

    Parameters
    ----------
    function
        A function numba can compile in nopython mode; it may call other
        functions decorated with ``jit``.

    Returns
    -------
    The stand-in, called like ``function``; numba is not imported until then.
    """
    return cast(F, _Kernel(function))


def fill(
    counts: np.ndarray,
    values: np.ndarray,
    lo: float,
    hi: float,
    weights: np.ndarray | None = None,
    sumw2: np.ndarray | None = None,
) -> None:
    """Add 1 to ``counts`` (length nbins + 2, flow bins at the ends) for each value;
    with ``weights``, add each value's weight, and its square to ``sumw2``.

    numpy, not numba: ROOT's rule evaluated block by block, the bin indices counted
    with ``np.bincount``. Values are converted to double precision before any
    comparison or arithmetic, as :func:`find_bin` does, so each lands in the same
    bin as there.
    """
    nbins = len(counts) - 2
    lo, hi = float(lo), float(hi)
    width = hi - lo
    flat = np.asarray(values).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None and len(w) != len(flat):
        msg = f"{len(w)} weights for {len(flat)} values"
        raise ValueError(msg)
    size = min(len(flat), _BLOCK)
    t = np.empty(size)
    flag = np.empty(size, dtype=np.bool_)
    index = np.empty(size, dtype=np.intp)
    total = np.zeros(nbins + 2, dtype=np.intp if w is None else np.float64)
    total2 = np.zeros(nbins + 2, dtype=np.float64)
    # inf - lo, a huge value times nbins: overflow to inf is the answer, not an error
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(flat), _BLOCK):
            x = flat[start : start + _BLOCK].astype(np.float64, copy=False)
            n = len(x)
            tb, fb, ib = t[:n], flag[:n], index[:n]
            np.subtract(x, lo, out=tb)
            tb *= nbins
            tb /= width
            # the flow bins from comparisons of x itself, as find_bin: near hi the scaled
            # value can round below nbins, and near lo a tiny negative one to -0.0
            np.less(x, hi, out=fb)
            np.logical_not(fb, out=fb)  # x >= hi or NaN
            np.copyto(tb, nbins, where=fb)
            np.less(x, lo, out=fb)
            np.copyto(tb, -1.0, where=fb)
            np.copyto(ib, tb, casting="unsafe")  # truncation, as int() in find_bin
            ib += 1
            if w is None:
                total += np.bincount(ib, minlength=nbins + 2)
                continue
            wb = w[start : start + _BLOCK]
            total += np.bincount(ib, weights=wb, minlength=nbins + 2)
            total2 += np.bincount(ib, weights=wb * wb, minlength=nbins + 2)
    counts += total
    if sumw2 is not None:
        sumw2 += total2 if w is not None else total


@jit
def find_bin(x: float, lo: float, hi: float, nbins: int) -> int:
    """ROOT's TAxis::FindBin for a regular axis: 0 underflow, nbins + 1 overflow."""
    xd = np.float64(x)
    if xd < lo:
        return 0
    if not xd < hi:
        return nbins + 1
    return 1 + int(nbins * (xd - lo) / (hi - lo))


@jit
def p4(pt: float, eta: float, phi: float, m: float) -> tuple[float, float, float, float]:
    """(px, py, pz, E) of a (pt, eta, phi, mass) vector, in double precision."""
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


@jit
def mass_of(px: float, py: float, pz: float, e: float) -> float:
    """Invariant mass; negative for a space-like vector, as ROOT's ``M()``."""
    m2 = e * e - px * px - py * py - pz * pz
    return math.sqrt(m2) if m2 >= 0 else -math.sqrt(-m2)


@jit
def delta_phi(phi1: float, phi2: float) -> float:
    """phi1 - phi2 wrapped once into [-pi, pi]."""
    d = phi1 - phi2
    if d > math.pi:
        d -= 2 * math.pi
    elif d < -math.pi:
        d += 2 * math.pi
    return d


@jit
def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    """sqrt(deta^2 + dphi^2) with dphi wrapped."""
    deta = eta1 - eta2
    dphi = delta_phi(phi1, phi2)
    return math.sqrt(deta * deta + dphi * dphi)
