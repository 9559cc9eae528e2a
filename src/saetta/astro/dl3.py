"""Stage: astro (layer 7) — the event files of a DL3 data store, in OBS_ID order.

:func:`event_files` takes what a user names on the command line:

- a GADF ``hdu-index`` file (``hdu-index.fits.gz``): its rows of ``HDU_TYPE`` ``events``,
  each file at ``FILE_DIR / FILE_NAME`` relative to the index's folder;
- a GADF ``obs-index`` file: the observations it lists (an obs-index trimmed by hand
  selects them), their files from the ``hdu-index`` beside it;
- a folder holding an ``hdu-index`` (``.fits.gz`` or ``.fits``);
- event files or glob patterns: themselves, patterns expanded and sorted by name
  (the files :mod:`~saetta.astro.gamma_sim` writes are named by OBS_ID).

A file the index names that does not exist, or an index without the columns it
needs, is a :class:`~saetta.errors.DatasetError` naming it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from saetta.errors import DatasetError

__all__ = ["event_files"]

_HDU_COLUMNS = ("OBS_ID", "HDU_TYPE", "FILE_DIR", "FILE_NAME")
_INDEX_NAMES = ("hdu-index.fits.gz", "hdu-index.fits")


def event_files(spec: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The event files of ``spec`` (an index, a folder, files or globs), in OBS_ID order.

    Raises
    ------
    DatasetError
        No index in a folder, an index lacking a column, a file it names missing,
        or a pattern matching nothing.

    Examples
    --------
    >>> event_files("obs/")  # doctest: +SKIP
    ['obs/obs_000001.fits', 'obs/obs_000002.fits']
    """
    items = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    if len(items) == 1:
        one = Path(items[0])
        if one.is_dir():
            return _from_hdu_index(_index_in(one))
        if "obs-index" in one.name:
            return _from_obs_index(one)
        if "hdu-index" in one.name:
            return _from_hdu_index(one)
    files: list[str] = []
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text):
            matched = sorted(glob.glob(text))
            if not matched:
                msg = f"no files match {text}"
                raise DatasetError(msg, path=text)
            files += matched
        else:
            files.append(text)
    return files


def _index_in(folder: Path) -> Path:
    for name in _INDEX_NAMES:
        if (folder / name).is_file():
            return folder / name
    msg = f"{folder} holds no DL3 index ({' or '.join(_INDEX_NAMES)})"
    raise DatasetError(msg, path=str(folder))


def _read_index(path: Path, needed: tuple[str, ...]) -> dict[str, list[Any]]:
    from astropy.io import fits

    if not path.is_file():
        msg = f"DL3 index not found: {path}"
        raise DatasetError(msg, path=str(path))
    try:
        with fits.open(path, memmap=False) as hdus:
            table = next((h for h in hdus if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                msg = f"{path} holds no table: not a DL3 index"
                raise DatasetError(msg, path=str(path))
            names = [n.upper() for n in table.columns.names]
            missing = [c for c in needed if c not in names]
            if missing:
                msg = f"DL3 index {path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                raise DatasetError(msg, path=str(path))
            data = table.data
            return {c: [_plain(v) for v in data[c]] for c in needed}
    except (OSError, ValueError, TypeError) as exc:
        msg = f"cannot read DL3 index {path}: {exc}"
        raise DatasetError(msg, path=str(path)) from exc


def _plain(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else int(value)


def _from_hdu_index(path: Path, only: set[int] | None = None) -> list[str]:
    columns = _read_index(path, _HDU_COLUMNS)
    rows = sorted(
        (int(obs), str(folder), str(name))
        for obs, kind, folder, name in zip(*(columns[c] for c in _HDU_COLUMNS), strict=True)
        if str(kind).lower() == "events" and (only is None or obs in only)
    )
    files = []
    for _, folder, name in rows:
        target = path.parent / folder / name
        if not target.is_file():
            msg = f"{path} names an event file that does not exist: {target}"
            raise DatasetError(msg, path=str(target))
        files.append(os.path.normpath(target))
    return files


def _from_obs_index(path: Path) -> list[str]:
    wanted = {int(v) for v in _read_index(path, ("OBS_ID",))["OBS_ID"]}
    return _from_hdu_index(_index_in(path.parent), wanted)
