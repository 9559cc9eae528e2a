"""Stage: dataset (layer 3) — the dataset catalog: named datasets in ``datasets.yaml``.

A catalog maps names to datasets: ``name: {files: [url or glob, ...], tree: Events,
format: root, storage_options: {s3: {...}}}``; ``saetta run adl @name`` and
:meth:`saetta.Dataset.from_catalog` open one by name.

A file may be listed with what it holds, ``{url: ..., entries: N, bytes: B}``
(mixed freely with plain paths and globs): such a file is not opened, nor even
stat'ed, when the dataset is opened, so that a million files cost no million
round trips; its units check its entries when they run. A catalog of that size
is best written by a program (from Rucio, say), as a CSV listing beside it,
``files_from: ttbar.csv`` with the header line ``url,entries,bytes``: a million
files read in seconds, where YAML takes minutes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from saetta._config import config_home
from saetta.errors import DatasetError
from saetta.formats import available_formats

__all__ = ["catalog_entry", "file_problem", "find_catalog"]


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
    ``files`` (a list of paths, globs and ``{url, entries, bytes}`` mappings), ``tree``,
    ``format``, ``storage_options``."""
    path = Path(catalog) if catalog is not None else find_catalog()
    if path is None:
        msg = f"no dataset catalog found for @{name}: create datasets.yaml or set SAETTA_CATALOG"
        raise DatasetError(msg)
    try:
        # libyaml's loader where there is one: described files parse ~6x faster (~100 µs each).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        document = yaml.load(path.read_text(), Loader=loader) or {}
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


_CATALOG_KEYS = frozenset(
    {"files", "files_from", "tree", "format", "storage_options", "description"}
)


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
    if "files_from" in entry:
        if files is not None:
            raise wrong("give 'files' or 'files_from', not both")
        files = _listing(entry["files_from"], Path(source).parent, wrong)
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files:
        raise wrong("'files' must be a path, URL or glob, or a non-empty list of them")
    for number, item in enumerate(files, 1):
        if isinstance(item, Mapping):
            problem = file_problem(item)
            if problem is not None:
                raise wrong(f"file {number} of 'files': {problem}")
        elif not isinstance(item, str) or not item:
            raise wrong(
                f"file {number} of 'files' must be a path, URL or glob, or "
                f"{{url: ..., entries: N, bytes: B}}, not {item!r}"
            )
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


_FILE_KEYS = ("url", "entries", "bytes")


def _listing(
    listing: object, folder: Path, wrong: Callable[[str], DatasetError]
) -> list[dict[str, Any]]:
    """The described files of a CSV listing (``url,entries,bytes`` with that header line),
    named relative to the catalog's folder: a million files read in about a second,
    where YAML takes minutes."""
    if not isinstance(listing, str) or not listing:
        raise wrong(f"'files_from' must name a CSV file of url,entries,bytes, not {listing!r}")
    path = folder / os.path.expanduser(listing)
    try:
        with open(path, newline="", encoding="utf-8") as text:
            rows = csv.reader(text)
            header = next(rows, None)
            if header != list(_FILE_KEYS):
                raise wrong(f"{path} must start with the line 'url,entries,bytes', not {header}")
            files = []
            for number, row in enumerate(rows, 2):
                try:
                    url, entries, size = row
                    files.append({"url": url, "entries": int(entries), "bytes": int(size)})
                except ValueError:
                    raise wrong(f"{path}:{number}: want url,entries,bytes, not {row}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise wrong(f"cannot read 'files_from' {path}: {exc}") from exc
    if not files:
        raise wrong(f"{path} lists no files")
    return files


def file_problem(item: Mapping[Any, Any]) -> str | None:
    """What is wrong with a described file, ``{url: ..., entries: N, bytes: B}``; None if
    nothing is."""
    keys = set(item)
    if keys != set(_FILE_KEYS):
        unknown = sorted(str(k) for k in keys - set(_FILE_KEYS))
        if unknown:
            return f"unknown key {unknown[0]!r} in a described file; it has {', '.join(_FILE_KEYS)}"
        missing = [k for k in _FILE_KEYS if k not in keys]
        return f"a described file needs {', '.join(_FILE_KEYS)}; {missing[0]!r} is missing"
    url = item["url"]
    if not isinstance(url, str | os.PathLike) or not os.fspath(url):
        return f"'url' must be a path or URL, not {url!r}"
    for name in ("entries", "bytes"):
        value = item[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name!r} of {os.fspath(url)} must be a whole number >= 0, not {value!r}"
    return None
