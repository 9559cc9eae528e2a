"""Stage: storage (layer 1) — what a URL may show: redaction of credentials.

A URL may carry a secret — ``user:password@`` or a token in its query string
(``?token=``, XRootD's ``?authz=``). saetta keeps the full URL in memory, where
the storage layer needs it, and shows and stores only the redacted form:
scheme, host, port and path. :func:`scrub` cleans text from elsewhere (an
exception message, a traceback) of any URL's credentials.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["is_remote", "redact", "scrub", "secrets_of"]


# A scheme as urllib.parse.urlsplit reads one, of two characters or more and not file,
# for a string urlsplit would not clean first (a leading control character or space, a
# tab or newline anywhere) nor check for an IPv6 host: a million files ask this a
# million times, several times faster than through urlsplit.
_SCHEME = re.compile(r"(?!(?i:file):)[A-Za-z][A-Za-z0-9+.-]+:")


def is_remote(path: str) -> bool:
    """True for a URL that is not a local file."""
    if path[:1] > " " and not (
        "\t" in path or "\r" in path or "\n" in path or "[" in path or "]" in path
    ):
        return _SCHEME.match(path) is not None
    scheme = urllib.parse.urlsplit(path).scheme
    return len(scheme) > 1 and scheme != "file"


# A URL that redacts to itself: lower-case scheme and host, a plain port, and nothing
# urlsplit would strip, split off or normalise (no user, query, fragment, IPv6, spaces
# or control characters). A million catalog URLs take this path, not two urlsplits.
_PLAIN_URL = re.compile(
    r"(?!file:)[a-z][a-z0-9+.-]+://[a-z0-9.-]+(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?:/[^?#@\x00-\x20\x7f]*)?"
)


def redact(url: str) -> str:
    """The URL without user, password, query string or fragment (tokens often live there)."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain and int(plain["port"] or 0) < 65536:
        return url
    if not is_remote(url):
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def secrets_of(url: str) -> tuple[str, ...]:
    """The parts of a URL that may be secret: user, password, query values, the raw query."""
    if not is_remote(url):
        return ()
    parts = urllib.parse.urlsplit(url)
    found = [parts.username or "", parts.password or "", parts.query, parts.fragment]
    for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False):
        found.append(value)
        found.append(urllib.parse.quote(value, safe=""))
    if parts.password:
        found.append(urllib.parse.unquote(parts.password))
    # Short values (a port number, "1") would scrub innocent text.
    return tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))


_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]*@")
_QUERY = re.compile(r"(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)[?#][^\s'\"<>)]*")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's user info and query removed, and each of ``secrets`` masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\g<scheme>", text)
    return _QUERY.sub(r"\g<url>", text)
