"""Stage: foundation (layer 0) — registries: names mapped to ``"module:attribute"`` strings.

Formats and executors are registered by name as strings and imported on first
use, so a missing optional dependency costs nothing until it is asked for (and
the layering test reads these strings as imports).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load"]


def load(target: str) -> Any:
    """The attribute ``"module:attribute"`` names, importing its module now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
