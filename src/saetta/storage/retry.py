"""Stage: storage (layer 1) — retrying what the network may fail at for a moment.

Network trouble (a refused connection, a timeout, a dropped connection) is
retried with backoff. What a client library raises for it is not always an
:class:`OSError`: botocore's ``EndpointConnectionError`` and aiohttp's
``ServerDisconnectedError`` are not, and fsspec's HTTP filesystem reports a
server that cannot be reached as :class:`FileNotFoundError`. Refused
credentials (HTTP 401/403, S3 ``AccessDenied``, no credentials at all) are
never retried: they become a :class:`StorageError` saying so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from saetta.errors import StorageError
from saetta.storage.url import is_remote, redact, scrub, secrets_of

if TYPE_CHECKING:
    from saetta.storage.location import StorageOptions

__all__ = ["access_denied", "first_line", "network_errors", "refusal_errors", "retrying"]

T = TypeVar("T")

_FINAL = (FileNotFoundError, PermissionError, IsADirectoryError)
_DENIED_STATUS = frozenset({401, 403})
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)


def retrying(action: Callable[[], T], url: str, options: StorageOptions) -> T:
    """Call ``action``, retrying transient network errors with exponential backoff.

    A file that does not exist or may not be read is not retried; for a remote
    URL, refused credentials raise :class:`StorageError` at once. When the
    retries are spent, :class:`StorageError` names the (redacted) URL.
    """
    delay = options.backoff
    for attempt in range(options.retries + 1):
        try:
            return action()
        except StorageError:
            raise
        except (*network_errors(), *refusal_errors()) as exc:
            if not is_remote(url):
                raise
            secrets = (*options.secrets(url), *secrets_of(url))
            if _denied(exc):
                raise access_denied(url, exc, secrets) from exc
            if isinstance(exc, _FINAL) and not _network_cause(exc):
                raise
            if isinstance(exc, refusal_errors()) and not _server_trouble(exc):
                msg = f"cannot read {redact(url)}: {type(exc).__name__}: {first_line(exc, secrets)}"
                raise StorageError(msg, url=redact(url)) from exc
            if attempt == options.retries:
                reason = _reason(exc)
                msg = (
                    f"cannot read {redact(url)} after {attempt + 1} attempts: "
                    f"{type(reason).__name__}: {first_line(reason, secrets)}"
                )
                # already retried here: not worth retrying again further up
                raise StorageError(msg, url=redact(url), transient=False) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError  # pragma: no cover - the loop returns or raises


def access_denied(url: str, exc: BaseException, secrets: tuple[str, ...] = ()) -> StorageError:
    """The error for a server that refused the credentials (or their absence)."""
    reason = _reason(exc)
    msg = (
        f"access denied to {redact(url)}: authentication failed or not authorised "
        f"({type(reason).__name__}: {first_line(reason, secrets)}); check the credentials"
    )
    return StorageError(msg, url=redact(url))


def first_line(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The exception's message on one line, at most 200 characters, without credentials."""
    text = scrub(" ".join(str(exc).split()), secrets)
    return text[:200] or type(exc).__name__


def network_errors() -> tuple[type[BaseException], ...]:
    """What the network clients raise for network trouble; only those already loaded
    (one not imported cannot have raised anything)."""
    found: list[type[BaseException]] = [OSError, TimeoutError]
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError...
        found += [botocore.ConnectionError, botocore.HTTPClientError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:  # ServerDisconnectedError, ClientConnectorError, ClientPayloadError
        found += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError]
    return tuple(found)


def refusal_errors() -> tuple[type[BaseException], ...]:
    """What the network clients raise for a server's error answer (an HTTP status, an S3
    error code) or for missing credentials, where loaded."""
    found: list[type[BaseException]] = []
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        found += [botocore.NoCredentialsError, botocore.PartialCredentialsError]
        found += [botocore.ClientError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        found += [aiohttp.ClientResponseError]
    return tuple(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> BaseException:
    """What to show of an error: the original one under a 'file not found' or 'permission
    denied' that a client library raised for it (fsspec's HTTP says only the URL)."""
    return list(_chain(exc))[-1] if isinstance(exc, _FINAL) else exc


def _denied(exc: BaseException) -> bool:
    """Whether the server refused the credentials: HTTP 401/403, S3 AccessDenied, none given."""
    botocore = sys.modules.get("botocore.exceptions")
    for error in _chain(exc):
        if isinstance(error, PermissionError):
            return True
        if getattr(error, "status", None) in _DENIED_STATUS:  # aiohttp's ClientResponseError
            return True
        if botocore is None:
            continue
        if isinstance(error, botocore.NoCredentialsError | botocore.PartialCredentialsError):
            return True
        if isinstance(error, botocore.ClientError):
            response = getattr(error, "response", {}) or {}
            code = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _DENIED_CODES or status in _DENIED_STATUS:
                return True
    return False


def _server_trouble(exc: BaseException) -> bool:
    """Whether an error answer may pass: the server is overloaded or failing (429, 5xx)."""
    status = getattr(exc, "status", None)  # aiohttp
    response = getattr(exc, "response", None)  # botocore
    if status is None and isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return isinstance(status, int) and (status == 429 or status >= 500)


def _network_cause(exc: BaseException) -> bool:
    """Whether a 'file not found' was really a server that could not be reached (fsspec's
    HTTP filesystem says FileNotFoundError for any failure of its HEAD and GET)."""
    network = network_errors()
    return any(
        isinstance(error, network) and not isinstance(error, _FINAL)
        for error in list(_chain(exc))[1:]
    )
