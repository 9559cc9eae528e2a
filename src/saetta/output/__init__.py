"""Stage: output (layer 8) — write a :class:`~saetta.Result` to ROOT or JSON, and describe one.

:mod:`~saetta.output.json_doc` and :mod:`~saetta.output.root_file` write the two
formats, :mod:`~saetta.output.describe` reads either back, :mod:`~saetta.output.walk`
walks a result's nested keys for all of them (and for :mod:`saetta.plot`).

ROOT (``.root``): every histogram as a ROOT histogram, nested dicts as directories
(``cutflow/h``), and a ``TObjString`` named ``saetta`` holding the JSON document
below without the histograms. How each histogram goes to ROOT:

- storage ``Double``, ``Int64``, ``AtomicInt64``, ``Unlimited``: ``TH1D``/``TH2D``/``TH3D``
  without ``fSumw2`` (ROOT's own form for unweighted counts: errors are ``sqrt(N)``);
  integer counts become doubles, exact up to 2**53;
- ``Weight``: ``TH1D``/``TH2D``/``TH3D`` with ``fSumw2`` = the variances;
- ``Mean``, ``WeightedMean``: ``TProfile`` when one-dimensional; uproot writes no 2-D or
  3-D profile, so those raise :class:`~saetta.SaettaError` (write ``.json`` instead);
- category axes (``StrCategory``, ``IntCategory``): labelled bins ``0 .. n`` (the labels in
  the ``TAxis``), the category overflow in ROOT's overflow bin; axes without flow bins
  get empty ROOT flow bins; more than three axes raise :class:`~saetta.SaettaError`.

Every histogram is checked before the file is opened: either all are written or nothing.

JSON (``.json``), one document::

    {
      "saetta_version": "0.1.0",
      "complete": true,                     # false: some units failed (see report.failures)
      "report": {...},                      # RunReport.to_dict(): events, bytes, time, failures
      "histograms": {                       # keys: result keys, "/"-joined for nested dicts
        "q1_met": {
          "storage": "weight",              # double, int64, atomic_int64, unlimited, weight,
                                            # mean, weighted_mean
          "axes": [{"type": "regular", "name": "x", "label": "...",
                    "bins": 100, "lo": 0.0, "hi": 200.0}],
                    # or "type": "variable", "edges": [...]
                    # or "type": "category", "categories": ["a", "b"]
                    # "underflow": false / "overflow": false when the axis lacks that bin
          "values": [...],                  # nested per axis: underflow first, overflow last
          "variances": [...],               # sum of squared weights, same layout
          "counts": [...]                   # mean storages only: the (effective) counts
        }
      },
      "values": {"n_selected": 1234},       # numbers and arrays, same key scheme
      "metadata": {"luminosity_pb": 3378,   # Result.metadata: a run over samples records
                   "samples": {...}}        # each sample's role, xsec, weight, variation
    }

:func:`describe` reads either kind of output back, cheaply and without trusting it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from saetta.errors import SaettaError
from saetta.execute import Result
from saetta.output.describe import HistogramSummary, OutputSummary, describe
from saetta.output.json_doc import to_json
from saetta.output.root_file import root_objects, write_root
from saetta.storage import atomic_path

__all__ = ["HistogramSummary", "OutputSummary", "describe", "save", "to_json"]


def save(result: Result, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path``; the suffix (``.root`` or ``.json``) picks the format.

    The file is written under a unique temporary name in the same folder and renamed
    into place, so concurrent runs writing the same path never see half a file.

    Parameters
    ----------
    result
        What :func:`saetta.run` returned.
    path
        The output file, ``.root`` or ``.json``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SaettaError
        A bad suffix, a histogram ROOT cannot hold (named by its key), a value JSON
        cannot hold, or a folder that cannot be written; nothing is left behind.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in {".root", ".json"}:
        msg = f"cannot write {target}: give a .root or .json output file"
        raise SaettaError(msg)
    if suffix == ".json":
        text = json.dumps(to_json(result), indent=1) + "\n"
    else:
        objects = root_objects(result)
    with atomic_path(target) as temporary:
        if suffix == ".json":
            temporary.write_text(text, encoding="utf-8")
        else:
            write_root(objects, temporary)
    return target
