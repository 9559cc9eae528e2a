"""Stage: dataset (layer 3) — the dataset catalog: named datasets in ``datasets.yaml``.

A catalog maps names to datasets: ``name: {files: [url or glob, ...], tree: Events,
format: root, storage_options: {s3: {...}}}``; ``saetta run adl @name`` and
:meth:`saetta.Dataset.from_catalog` open one by name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from saetta._config import config_home
from saetta.errors import DatasetError
from saetta.formats import available_formats

__all__ = ["catalog_entry", "find_catalog"]


def find_catalog() -> Path | None:
    """The dataset catalog: ``$SAETTA_CATALOG``, ``./datasets.yaml``, or
    ``$XDG_CONFIG_HOME/saetta/datasets.yaml``; the first that exists.

    Raises
    ------
    DatasetError
        ``$SAETTA_CATALOG`` names a file that does not exist.
    """
    named = os.environ.get("SAETTA_CATALOG")
    if named:
        if not Path(named).is_file():
            msg = f"SAETTA_CATALOG names {named}, which is not a file"
            raise DatasetError(msg, path=named)
        return Path(named)
    candidates = [Path("datasets.yaml"), config_home() / "datasets.yaml"]
    return next((p for p in candidates if p.is_file()), None)


def catalog_entry(name: str, catalog: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The dataset ``name`` of a catalog file (default: :func:`find_catalog`), checked:
    ``files`` (a list), ``tree``, ``format``, ``storage_options``."""
    path = Path(catalog) if catalog is not None else find_catalog()
    if path is None:
        msg = f"no dataset catalog found for @{name}: create datasets.yaml or set SAETTA_CATALOG"
        raise DatasetError(msg)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        msg = f"cannot read dataset catalog {path}: {reason}"
        raise DatasetError(msg, path=str(path)) from exc
    if not isinstance(document, Mapping):
        msg = (
            f"dataset catalog {path} must map names to datasets, not be a {type(document).__name__}"
        )
        raise DatasetError(msg, path=str(path))
    if name not in document:
        known = ", ".join(sorted(str(k) for k in document))
        msg = f"no dataset {name!r} in {path}; it has: {known or 'nothing'}"
        raise DatasetError(msg, path=str(path))
    return _checked(name, document[name], str(path))


_CATALOG_KEYS = frozenset({"files", "tree", "format", "storage_options", "description"})


def _checked(name: str, entry: object, source: str) -> dict[str, Any]:
    """One dataset of a catalog, checked: ``files`` (a pattern or a list of them),
    ``tree``, ``format``, ``storage_options`` (protocol -> options)."""

    def wrong(what: str) -> DatasetError:
        return DatasetError(f"dataset {name!r} in {source}: {what}", path=source)

    if not isinstance(entry, Mapping):
        raise wrong(f"must be a mapping with 'files: [...]', not a {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in _CATALOG_KEYS)
    if unknown:
        raise wrong(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_CATALOG_KEYS))}")
    files = entry.get("files")
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise wrong("'files' must be a path, URL or glob, or a non-empty list of them")
    tree = entry.get("tree", "Events")
    if not isinstance(tree, str) or not tree:
        raise wrong(f"'tree' must be a name, not {tree!r}")
    format = entry.get("format")
    if format is not None and format not in available_formats():
        raise wrong(f"'format' must be one of {', '.join(available_formats())}, not {format!r}")
    options = entry.get("storage_options") or {}
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in options.items()
    ):
        raise wrong("'storage_options' must map a protocol to its options, e.g. {s3: {...}}")
    return {"files": files, "tree": tree, "format": format, "storage_options": options}
