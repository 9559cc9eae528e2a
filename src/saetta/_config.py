"""Stage: foundation (layer 0) — where saetta keeps things by default, and its defaults.

One place for the XDG folders and the environment variables that move them, so
every command and module agrees on them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "cache_home",
    "config_home",
    "data_cache_dir",
    "data_home",
    "runs_dir",
]

#: Upper bound of the data cache tier when none is given.
DEFAULT_CACHE_SIZE = "50GB"


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/saetta`` (default ``~/.cache/saetta``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "saetta"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/saetta`` (default ``~/.config/saetta``)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "saetta"


def data_home() -> Path:
    """``$XDG_DATA_HOME/saetta`` (default ``~/.local/share/saetta``)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "saetta"


def runs_dir() -> Path:
    """Where run directories go when none is given: ``~/.cache/saetta/runs``."""
    return cache_home() / "runs"


def data_cache_dir() -> Path:
    """The default folder of the data cache tier: ``~/.cache/saetta/data``."""
    return cache_home() / "data"
