"""Stage: formats (layer 3) — one module per on-disk format, each a :class:`~saetta._typing.Reader`.

- :mod:`saetta.formats.root`: ROOT TTree and RNTuple, through uproot.
- :mod:`saetta.formats.parquet`: Parquet, through pyarrow; row groups are the natural split.

Readers are chosen by name in :func:`saetta.dataset.open_reader`.
"""

from __future__ import annotations
