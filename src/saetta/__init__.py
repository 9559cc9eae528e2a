"""saetta: columnar analysis of event data."""

from __future__ import annotations

from saetta._version import __version__

__all__ = ["__version__"]
