"""Stage: analyses (layer 9) — analyses shipped with saetta.

- :mod:`saetta.analyses.adl`: the eight IRIS-HEP ADL benchmark queries;
- :mod:`saetta.analyses.agc`: the Analysis Grand Challenge ttbar measurement;
- :mod:`saetta.analyses.gamma`: a gamma-ray source's ON/OFF analysis (θ², Li & Ma);
- :mod:`saetta.analyses.gw`: a matched-filter search of gravitational-wave strain.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from saetta.errors import SaettaError

__all__ = ["load_analysis"]


def load_analysis(spec: str) -> Callable[[Any], Any]:
    """Find an analysis function from its name on the command line.

    - ``adl``: all eight ADL queries; ``adl.q5``: one of them;
    - ``agc``: the Analysis Grand Challenge ttbar analysis (run it over a samples file);
    - ``gamma``: the ON/OFF analysis of gamma-ray event lists, with its defaults (the
      source from each file's ``RA_OBJ``/``DEC_OBJ``; ``saetta gamma`` sets the rest);
    - ``path/to/file.py:function`` or ``package.module:function``.
    """
    if spec == "agc":
        from saetta.analyses import agc

        return agc.analysis
    if spec == "gamma":
        from saetta.analyses import gamma

        return gamma.OnOff()
    if spec == "adl" or spec.startswith("adl."):
        from saetta.analyses import adl

        if spec == "adl":
            return adl.analysis
        query = spec.removeprefix("adl.")
        if query not in adl.QUERIES:
            msg = f"unknown ADL query {query!r}; available: {', '.join(adl.QUERIES)}"
            raise SaettaError(msg)
        return adl.QUERIES[query]
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        msg = f"cannot find analysis {spec!r}: give 'adl', 'adl.qN', 'agc', 'gamma', 'file.py:function' or 'module:function'"
        raise SaettaError(msg)
    if where.endswith(".py"):
        if not os.path.isfile(where):
            msg = f"analysis file not found: {where}"
            raise SaettaError(msg)
        digest = hashlib.sha1(os.path.abspath(where).encode(), usedforsecurity=False)
        module_name = f"_saetta_user_{digest.hexdigest()[:12]}"  # stable: names the run
        module_spec = importlib.util.spec_from_file_location(module_name, where)
        assert module_spec is not None
        assert module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            msg = f"cannot load analysis file {where}: {type(exc).__name__}: {exc}"
            raise SaettaError(msg) from exc
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            msg = f"cannot import analysis module {where!r}: {exc}"
            raise SaettaError(msg) from exc
    function = getattr(module, name, None)
    if not callable(function):
        msg = f"{where} has no function {name!r}"
        raise SaettaError(msg)
    return function  # type: ignore[no-any-return]
