"""Stage: analyses (layer 9) — analyses shipped with saetta.

- :mod:`saetta.analyses.adl`: the eight IRIS-HEP ADL benchmark queries.
"""

from __future__ import annotations
