"""What a URL may show: :func:`saetta.storage.redact` against urllib's own reading."""

from __future__ import annotations

import random
import urllib.parse

import pytest

from saetta.storage import is_remote, redact


def reference(url: str) -> str:
    """The redacted form, through urlsplit alone: scheme, host (lower-cased), port, path."""
    parts = urllib.parse.urlsplit(url)
    if len(parts.scheme) <= 1 or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def remote_reference(path: str) -> bool:
    scheme = urllib.parse.urlsplit(path).scheme
    return len(scheme) > 1 and scheme != "file"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("root://eos.example.org//store/f.root", "root://eos.example.org//store/f.root"),
        ("https://u:secret@host:8443/a.root?token=x#f", "https://host:8443/a.root"),
        ("HTTPS://Host.Example/a.root", "https://host.example/a.root"),
        ("s3://bucket/key.root\n", "s3://bucket/key.root"),
        ("/local/path:with:colons.root", "/local/path:with:colons.root"),
        ("file:///a.root", "file:///a.root"),
        ("https://[::1]:8080/a", "https://[::1]:8080/a"),
    ],
)
def test_known_urls(url: str, shown: str) -> None:
    assert redact(url) == shown == reference(url)


def test_random_urls_redact_as_urllib_reads_them() -> None:
    pieces = ["root://", "https://", "s3://", "file://", "x://", "HTTPS://", "eos.cern.ch"]
    pieces += [":1094", ":0", ":99999", ":08", "//store", "/a", "?x=1", "#f", "u:p@", "[::1]"]
    pieces += [":", "/", "a:b", "%2F", "é", " ", "\t", "\x01", "\x7f", "A", "@", "~"]
    rng = random.Random(11)
    checked = 0
    for _ in range(50_000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))
        try:
            expected = reference(url)
        except ValueError:  # a port out of range: redact must refuse it too
            with pytest.raises(ValueError, match=r"[Pp]ort|IPv6"):
                redact(url)
            continue
        assert redact(url) == expected, repr(url)
        checked += 1
    assert checked > 40_000


def test_random_paths_are_remote_as_urllib_reads_them() -> None:
    pieces = ["root://", "https:", "s3://", "file:", "FILE:", "c:", "x+y.z:", "a", "/", "."]
    pieces += [" ", "\t", "\n", "\r", "\x00", "\x1f", "[", "]", "::1", "é", "?", "#", "1", "-"]
    rng = random.Random(12)
    remote = 0
    for _ in range(100_000):
        path = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        try:
            expected = remote_reference(path)
        except ValueError:  # an IPv6 host urlsplit refuses: is_remote goes through it too
            with pytest.raises(ValueError, match="IPv6"):
                is_remote(path)
            continue
        assert is_remote(path) is expected, repr(path)
        remote += expected
    assert 10_000 < remote < 90_000  # both answers were tried often
