"""Stage: storage (layer 1) — whether an HTTP server answers range requests.

saetta reads parts of remote files. An HTTP server that ignores the ``Range``
header (Python's ``http.server``) answers every request with the whole file:
hundreds of megabytes for each basket, and bytes a reader cannot parse. So a
server is asked for two bytes before anything else is read from it, once per
file and process; one that answers otherwise is refused, saying why.
"""

from __future__ import annotations

import threading
from typing import Any

from saetta.errors import StorageError
from saetta.storage.retry import first_line, network_errors, refusal_errors
from saetta.storage.url import redact

__all__ = ["PROTOCOLS", "checked", "judge", "probe"]

PROTOCOLS = frozenset({"http", "https"})

_CHECKED: set[str] = set()
_LOCK = threading.Lock()


def checked(url: str) -> bool:
    """Whether this process has seen the server of ``url`` answer a range request."""
    with _LOCK:
        return url in _CHECKED


def probe(fs: Any, url: str) -> tuple[int, str | None]:
    """Ask for bytes 0-1 of ``url`` through fsspec's HTTP filesystem ``fs``: (status,
    Content-Range). Network trouble and refusals raise as the HTTP client raises them."""
    from fsspec.asyn import sync

    async def ask() -> tuple[int, str | None]:
        session = await fs.set_session()
        kwargs = dict(fs.kwargs)
        headers = {**kwargs.pop("headers", {}), "Range": "bytes=0-1"}
        async with session.get(fs.encode_url(url), headers=headers, **kwargs) as response:
            return response.status, response.headers.get("Content-Range")

    try:
        answer: tuple[int, str | None] = sync(fs.loop, ask)
    except (*network_errors(), *refusal_errors()):
        raise  # network trouble is retried, refused credentials are said so, by retrying()
    except Exception as exc:
        msg = f"HTTP request to {redact(url)} failed: {type(exc).__name__}: {first_line(exc)}"
        raise StorageError(msg, url=redact(url)) from exc
    return answer


def judge(url: str, status: int, content_range: str | None) -> None:
    """Raise :class:`StorageError` unless (status, Content-Range) answer bytes 0-1; else
    remember that the server of ``url`` does ranges."""
    if status in {401, 403}:
        msg = (
            f"access denied to {redact(url)}: authentication failed or not authorised "
            f"(HTTP {status}); check the credentials"
        )
        raise StorageError(msg, url=redact(url))
    if status == 404:
        msg = f"file not found: {redact(url)}"
        raise StorageError(msg, url=redact(url))
    if status != 206 or not (content_range or "").startswith("bytes 0-"):
        msg = (
            f"the server of {redact(url)} does not support HTTP range requests (it answered "
            f"{status} to a request for 2 bytes); saetta needs them to read parts of remote "
            "files: use a server that supports them (nginx, Apache, XRootD's HTTP), or copy "
            "the file locally"
        )
        raise StorageError(msg, url=redact(url))
    with _LOCK:
        _CHECKED.add(url)
