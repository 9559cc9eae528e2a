"""Remote reading, hardened: what saetta deletes, what it shows, and how it fails.

- saetta deletes only in folders it made (a ``.saetta-<kind>`` marker), and in them only its
  own files: ``saetta cache clear`` and eviction leave a user's files alone, and a user's
  folder is refused as a cache;
- a secret in a URL (``?token=``, ``user:password@``, an S3 secret key) is never printed or
  stored, and refused credentials say so, on one line;
- an unreachable endpoint is one line, soon; a server that ignores range requests is named
  as such, and nothing it sent is cached.

Every command runs as the real ``saetta`` in a subprocess, against the real servers of
``storage_services.py`` (nginx with basic auth on ``/private/``, SeaweedFS with SigV4) and
Python's ``http.server`` for a server without range requests. Each failure path has its
positive control beside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from storage_services import StorageServer, free_port

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod
from saetta.errors import StorageError
from saetta.storage import StorageOptions, cache_info, clear_cache, expand, file_identity

pytestmark = pytest.mark.slow

SAETTA = str(Path(sys.executable).with_name("saetta"))
TOKEN = "SECRETTOKEN123"
WRONG_PASSWORD = "wrong-Pw-81zq"
WRONG_S3_SECRET = "wrong-s3-secret-4471"
BLOCK_FILE = re.compile(r"[0-9a-f]{24}/[0-9]+")


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    def __str__(self) -> str:  # shown by pytest when an assertion on an Outcome fails
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def _saetta(*args: str | os.PathLike[str], home: Path, env: Mapping[str, str] = {}) -> Outcome:
    """``saetta ARGS`` in a fresh process, with its XDG folders (run directories) in ``home``
    and a umask of 0, so that only an explicit mode keeps a folder private."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SAETTA_CACHE", "SAETTA_COLUMN_CACHE", "PYTHONWARNINGS"))
    }
    environment |= {
        "XDG_CACHE_HOME": str(home / "xdg-cache"),
        "XDG_DATA_HOME": str(home / "xdg-data"),
        "COLUMNS": "100",
        **env,
    }
    started = time.perf_counter()
    done = subprocess.run(
        [SAETTA, *(os.fspath(a) for a in args)],
        cwd=home,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        umask=0,
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def _one_line_error(out: Outcome, *needles: str) -> str:
    """The command failed with exit 1 and one ``saetta: error:`` line holding ``needles``."""
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("saetta: error: "), out
    assert "Traceback" not in out.stdout + out.stderr, out
    for needle in needles:
        assert needle in lines[0], out
    return lines[0]


def _files(folder: Path) -> Iterator[Path]:
    yield from (p for p in folder.rglob("*") if p.is_file())


def _leaks(secrets: tuple[str, ...], outputs: tuple[Outcome, ...], folder: Path) -> list[str]:
    """Where any of ``secrets`` shows: in what a command printed or any file under ``folder``."""
    found = []
    for secret in secrets:
        for n, out in enumerate(outputs):
            if secret in out.stdout or secret in out.stderr:
                found.append(f"{secret} in the output of command {n}")
        found += [f"{secret} in {p}" for p in _files(folder) if secret.encode() in p.read_bytes()]
    return found


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder)}


def _blocks(cache: Path) -> list[str]:
    return sorted(
        str(p.relative_to(cache))
        for p in _files(cache)
        if BLOCK_FILE.fullmatch(str(p.relative_to(cache)))
    )


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _q1_met(out_json: Path) -> list[float]:
    values: list[float] = json.loads(out_json.read_text())["histograms"]["q1_met"]["values"]
    return values


def _local_q1_met(path: Path) -> np.ndarray:
    result = saetta.run(adl.q1, path, run_dir=False, progress=False)
    return np.asarray(result["q1_met"].view(flow=True))


def _https_env(server: StorageServer) -> dict[str, str]:
    """The CLI trusts the server's self-signed certificate as any user would: SSL_CERT_FILE."""
    return {"SSL_CERT_FILE": str(server.ca_file)}


def _s3_env(server: StorageServer, secret: str, endpoint: str | None = None) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": server.info["ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": endpoint or server.info["ENDPOINT"],
        "AWS_DEFAULT_REGION": server.info["REGION"],
    }


def _publish(server: StorageServer, path: Path, name: str) -> str:
    target = server.root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    server.sync()
    return server.url(name)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_nanoaod(tmp_path_factory.mktemp("hardening") / "small.root", 2_000, seed=1)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Some MB: much more than what a server pushes out before a client hangs up on it."""
    return generate_nanoaod(tmp_path_factory.mktemp("hardening") / "large.root", 50_000, seed=2)


def _user_files(folder: Path) -> dict[str, bytes]:
    """A user's folder, as a careless ``saetta cache clear ~`` would meet it."""
    files = {
        "Documents/thesis.tex": b"\\section{Results}\n",
        ".ssh/id_rsa": b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        "photos/2026/beach.jpg": b"\xff\xd8\xff\xe0 not really a JPEG",
        "0123456789abcdef01234567/1": b"looks like a block, is not in a saetta cache",
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def _old(path: Path) -> None:
    """Make a file look least recently used: the first an eviction would pick."""
    os.utime(path, (1_000_000, 1_000_000))


# --------------------------------------------------------------------------- 1. cache ownership


def test_cache_clear_refuses_a_folder_saetta_did_not_make(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _user_files(home)
    before = _snapshot(home)
    out = _saetta("cache", "clear", home, home=tmp_path)
    _one_line_error(out, "StorageError", "not a saetta data cache", str(home))
    assert _snapshot(home) == before  # every file intact, nothing added
    for look in (cache_info, clear_cache):
        with pytest.raises(StorageError, match="not a saetta data cache"):
            look(home)
    assert _snapshot(home) == before


def test_clear_and_eviction_touch_only_saetta_blocks(
    https_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    first = _publish(https_server, small, "owned_a.root")
    second = _publish(https_server, small, "owned_b.root")
    cache = tmp_path / "cache"
    cache.mkdir()  # an existing empty folder may become a cache
    options = {"https": https_server.storage_options}
    dataset = saetta.Dataset.open(first, storage_options=options, cache=cache)
    saetta.run(adl.q1, dataset, run_dir=False, progress=False)
    assert (cache / ".saetta-data-cache").is_file()
    [first_block] = _blocks(cache)
    block_bytes = (cache / first_block).stat().st_size

    # a user's files inside the cache, older than any block: first in line for eviction
    strays = {
        cache / "notes.txt": b"my notes",
        cache / first_block.split("/")[0] / "notes": b"notes in a block folder",
        cache / "sub" / "1": b"a number, but not in a block folder",
    }
    # and a link named like a block folder, to a folder of the user's holding a "block"
    outside = tmp_path / "outside"
    strays[outside / "1"] = b"reached only through a link"
    for path, data in strays.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        _old(path)
    (cache / "abcdef0123456789abcdef01").symlink_to(outside)

    # eviction, from the command line: room for one block, and a second file to cache
    bound = block_bytes + 1000
    out = _saetta(
        "run", "adl.q1", second, "--cache", cache, "--cache-size", str(bound),
        home=tmp_path, env=_https_env(https_server),
    )  # fmt: skip
    assert out.returncode == 0, out
    blocks = _blocks(cache)
    assert first_block not in blocks  # eviction ran: the older block went
    assert len(blocks) == 1
    assert cache_info(cache)["bytes"] <= bound
    assert {p: p.read_bytes() for p in strays} == strays

    # clear: every block goes, the bytes freed are reported, the user's files stay
    held = cache_info(cache)["bytes"]
    assert held > 0
    out = _saetta("cache", "clear", cache, home=tmp_path)
    assert out.returncode == 0, out
    assert out.stdout.strip() == f"freed {held / 1e6:,.1f} MB in {cache}"
    assert _blocks(cache) == []
    assert cache_info(cache)["blocks"] == 0
    assert {p: p.read_bytes() for p in strays} == strays


def test_a_user_folder_is_refused_as_data_cache_and_new_folders_are_private(
    https_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    url = _publish(https_server, small, "refused.root")
    folder = tmp_path / "mine"
    folder.mkdir()
    _user_files(folder)
    before = _snapshot(folder)
    served = https_server.bytes_served()
    out = _saetta(
        "run", "adl.q1", url, "--cache", folder, "--cache-size", "5MB",
        home=tmp_path, env=_https_env(https_server),
    )  # fmt: skip
    _one_line_error(out, "StorageError", "not a saetta data cache", str(folder))
    assert https_server.bytes_served() == served  # not a byte of the file was read
    assert _snapshot(folder) == before  # no marker either

    # positive control: folders that do not exist yet are made saetta's, private (umask 0)
    fresh = tmp_path / "fresh"
    out = _saetta(
        "run", "adl.q1", url, "--cache", fresh / "data", "--column-cache", fresh / "columns",
        home=tmp_path, env=_https_env(https_server),
    )  # fmt: skip
    assert out.returncode == 0, out
    assert _blocks(fresh / "data")
    assert [p for p in _files(fresh / "columns") if p.suffix == ".arrow"]
    [run_dir] = (tmp_path / "xdg-cache" / "saetta" / "runs").iterdir()  # the refused run made none
    assert (run_dir / "run.json").is_file()
    made = {fresh / "data": "data-cache", fresh / "columns": "column-cache", run_dir: "run"}
    for made_folder, kind in made.items():
        assert _mode(made_folder) == 0o700, made_folder
        assert (made_folder / f".saetta-{kind}").is_file()


def test_column_cache_refuses_user_arrow_files_and_evicts_only_its_own(
    small: Path, tmp_path: Path
) -> None:
    from saetta.formats.column_cache import CachedReader
    from saetta.formats.root import RootReader

    folder = tmp_path / "arrows"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.arrow").write_bytes(b"a user's table")
    (folder / "sub" / "0-100.arrow").write_bytes(b"another")
    before = _snapshot(folder)
    out = _saetta("run", "adl.q1", small, "--column-cache", folder, home=tmp_path)
    _one_line_error(out, "not a saetta column cache", str(folder))
    assert _snapshot(folder) == before

    # positive control: a column cache saetta made, filled, then read with a tiny bound
    cache = tmp_path / "columns"
    identity = file_identity(str(small))
    filler = CachedReader(RootReader(str(small)), cache, identity)
    assert _mode(cache) == 0o700
    assert (cache / ".saetta-column-cache").is_file()
    filler.read(["MET_pt"], 0, 1000)
    filler.close()
    [entry] = [p for p in _files(cache) if p.suffix == ".arrow"]
    user = [cache / "x.arrow", entry.parent / "x.arrow", entry.parent.parent / "x.arrow"]
    linked = tmp_path / "linked" / "MET_pt" / "0-1000.arrow"  # behind a link named like a key
    linked.parent.mkdir(parents=True)
    (cache / "0123456789abcdef0123").symlink_to(linked.parent.parent)
    for path in [*user, linked]:
        path.write_bytes(b"a user's table")
        _old(path)
    bounded = CachedReader(RootReader(str(small)), cache, identity, max_bytes=1)
    bounded.read(["MET_phi"], 0, 1000)  # stores, then evicts down to the bound
    bounded.close()
    assert not entry.exists()  # eviction ran
    assert not [p for p in _files(cache) if p.suffix == ".arrow" and p.name != "x.arrow"]
    assert all(p.read_bytes() == b"a user's table" for p in [*user, linked])


# --------------------------------------------------------------------------- 2. credentials


def test_a_token_in_the_url_is_never_shown_or_stored(
    https_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    url = _publish(https_server, small, "token.root") + f"?token={TOKEN}"
    cache = tmp_path / "cache"
    good = _saetta(
        "run", "adl.q1", url, "-o", "out.json", "--cache", cache,
        home=tmp_path, env=_https_env(https_server),
    )  # fmt: skip
    assert good.returncode == 0, good
    np.testing.assert_array_equal(_q1_met(tmp_path / "out.json"), _local_q1_met(small))
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["dataset"] == https_server.url("token.root")  # shown, redacted
    [run_dir] = (tmp_path / "xdg-cache" / "saetta" / "runs").iterdir()
    command = json.loads((run_dir / "run.json").read_text())["command"]
    assert command["files"] == [https_server.url("token.root")]
    assert command["credentials_removed"] is True
    assert _blocks(cache)
    access_log = Path(https_server.info["ACCESS_LOG"]).read_text()
    assert f"token={TOKEN}" in access_log  # the token did reach the server

    # a failing unit whose error quotes the full URL (as a library error would)
    analysis = tmp_path / "quoting.py"
    analysis.write_text(
        "import sys\n\n\ndef analysis(events):\n"
        "    raise RuntimeError('cannot use ' + ' '.join(sys.argv))\n"
    )
    bad = _saetta(
        "run", f"{analysis}:analysis", url, "-o", "bad.json",
        home=tmp_path, env=_https_env(https_server),
    )  # fmt: skip
    _one_line_error(bad, "UnitError", "RuntimeError", "cannot use", "token.root")
    failed_dir = next(
        p for p in (tmp_path / "xdg-cache" / "saetta" / "runs").iterdir() if p != run_dir
    )
    failures = (failed_dir / "failures.json").read_text()
    assert "cannot use" in failures
    assert "token.root" in failures
    assert _leaks((TOKEN,), (good, bad), tmp_path) == []


def test_basic_auth_right_password_works_wrong_one_is_denied_and_neither_shows(
    https_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    _publish(https_server, small, "private/auth.root")
    user, password = https_server.info["AUTH_USER"], https_server.info["AUTH_PASSWORD"]
    port = https_server.port
    shown = f"https://127.0.0.1:{port}/private/auth.root"
    right = f"https://{user}:{password}@127.0.0.1:{port}/private/auth.root"
    wrong = f"https://{user}:{WRONG_PASSWORD}@127.0.0.1:{port}/private/auth.root"
    env = _https_env(https_server)

    good = _saetta("run", "adl.q1", right, "-o", "good.json", home=tmp_path, env=env)
    assert good.returncode == 0, good
    np.testing.assert_array_equal(_q1_met(tmp_path / "good.json"), _local_q1_met(small))
    assert json.loads((tmp_path / "good.report.json").read_text())["dataset"] == shown

    bad = _saetta("run", "adl.q1", wrong, "-o", "bad.json", home=tmp_path, env=env)
    line = _one_line_error(bad, "StorageError", shown)
    assert "access denied" in line
    assert "authentication failed" in line
    assert not (tmp_path / "bad.json").exists()

    assert _leaks((password, WRONG_PASSWORD), (good, bad), tmp_path) == []
    options = StorageOptions(protocol_options={"https": https_server.storage_options})
    with pytest.raises(StorageError, match="access denied"):  # the server does ask
        expand([shown], options)


def test_s3_right_secret_works_wrong_one_is_denied_and_neither_shows(
    s3_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    url = _publish(s3_server, small, "auth.root")
    right = s3_server.info["SECRET_KEY"]
    good = _saetta(
        "run", "adl.q1", url, "-o", "good.json", home=tmp_path, env=_s3_env(s3_server, right)
    )
    assert good.returncode == 0, good
    np.testing.assert_array_equal(_q1_met(tmp_path / "good.json"), _local_q1_met(small))

    bad = _saetta("run", "adl.q1", url, home=tmp_path, env=_s3_env(s3_server, WRONG_S3_SECRET))
    line = _one_line_error(bad, "StorageError", url)
    assert "access denied" in line
    assert "authentication failed" in line
    assert _leaks((right, WRONG_S3_SECRET), (good, bad), tmp_path) == []


# --------------------------------------------------------------------------- 3. unreachable


def test_unreachable_s3_endpoint_is_one_line_and_soon(
    s3_server: StorageServer, small: Path, tmp_path: Path
) -> None:
    url = _publish(s3_server, small, "reachable.root")
    right = s3_server.info["SECRET_KEY"]
    options = StorageOptions(protocol_options={"s3": s3_server.storage_options})
    assert expand([url], options) == [url]  # positive control: the endpoint that runs

    nowhere = f"http://127.0.0.1:{free_port()}"
    bad = _saetta(
        "run", "adl.q1", "s3://bucket/x.root", home=tmp_path,
        env=_s3_env(s3_server, right, endpoint=nowhere),
    )  # fmt: skip
    line = _one_line_error(bad, "StorageError", "s3://bucket/x.root", "after 4 attempts")
    assert "EndpointConnectionError" in line
    print(f"unreachable S3 endpoint: exit 1 after {bad.wall_s:.1f} s")
    assert bad.wall_s < 60  # retried with backoff (1, 2, 4 s), not for minutes


def test_refused_credentials_are_not_retried_network_errors_are(
    s3_server: StorageServer, small: Path
) -> None:
    url = _publish(s3_server, small, "retries.root")
    wrong = {"s3": {**s3_server.storage_options, "secret": WRONG_S3_SECRET}}
    started = time.perf_counter()
    with pytest.raises(StorageError, match="access denied") as info:
        expand([url], StorageOptions(protocol_options=wrong, backoff=30.0))
    assert time.perf_counter() - started < 15  # a retry would have slept 30 s first
    assert WRONG_S3_SECRET not in str(info.value)

    # positive control: the same call to an endpoint that is down is retried
    dead = {
        "s3": {
            **s3_server.storage_options,
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
        }
    }
    with pytest.raises(StorageError, match=r"after 3 attempts: EndpointConnectionError"):
        expand([url], StorageOptions(protocol_options=dead, retries=2, backoff=0.1))


def test_an_https_server_that_is_down_is_not_a_missing_file() -> None:
    url = f"https://127.0.0.1:{free_port()}/x.root"
    with pytest.raises(StorageError, match=r"after 2 attempts: .*Connect") as info:
        expand([url], StorageOptions(retries=1, backoff=0.1))
    assert "not found" not in str(info.value)


# --------------------------------------------------------------------------- 4. no ranges

# Python's http.server, which answers any GET with 200 and the whole file, with a count of
# the body bytes it managed to send (a small send buffer, so that what a hung-up client never
# read is not counted). Under /liar/ it answers a 2-byte range properly and ignores any other:
# only the length of a block can tell.
_SERVER = """
import functools, http.server, os, socket, sys

directory, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(http.server.SimpleHTTPRequestHandler):
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)

    def send_head(self):
        if self.path.startswith("/liar/") and self.headers.get("Range") == "bytes=0-1":
            path = self.translate_path(self.path)
            with open(path, "rb") as f:
                body = f.read(2)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-1/{os.path.getsize(path)}")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)
            self.count(2)
            return None
        return super().send_head()

    def copyfile(self, source, outputfile):
        sent = 0
        try:
            while chunk := source.read(64 * 1024):
                outputfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.count(sent)

    def count(self, sent):
        with open(log, "a") as f:
            f.write(f"{self.path} {sent}\\n")

    def log_message(self, *args):
        pass


handler = functools.partial(Handler, directory=directory)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
print("ready", flush=True)
server.serve_forever()
"""


@dataclass(frozen=True)
class PlainServer:
    base_url: str
    log: Path

    def bytes_sent(self, prefix: str) -> int:
        if not self.log.exists():
            return 0
        lines = [line.split() for line in self.log.read_text().splitlines()]
        return sum(int(n) for path, n in lines if path.startswith(prefix))


@pytest.fixture(scope="module")
def plain_server(large: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainServer]:
    folder = tmp_path_factory.mktemp("plain_http")
    for sub in ("plain", "liar"):
        (folder / sub).mkdir()
        (folder / sub / "f.root").write_bytes(large.read_bytes())
    port = free_port()
    log = folder / "sent.log"
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(folder), str(port), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield PlainServer(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_server_without_range_requests_is_named_and_nothing_is_cached(
    plain_server: PlainServer, https_server: StorageServer, large: Path, tmp_path: Path
) -> None:
    url = f"{plain_server.base_url}/plain/f.root"
    cache = tmp_path / "cache"
    for attempt in range(2):  # the second run fails the same way: nothing bad was cached
        before = plain_server.bytes_sent("/plain/")
        out = _saetta("run", "adl.q1", url, "--cache", cache, home=tmp_path)
        _one_line_error(out, "StorageError", url, "does not support HTTP range requests")
        sent = plain_server.bytes_sent("/plain/") - before
        print(
            f"no-range server, run {attempt + 1}: {sent:,} of {large.stat().st_size:,} bytes sent"
        )
        assert 0 < sent < large.stat().st_size / 5
        assert [p.name for p in _files(cache)] == [".saetta-data-cache"]  # no block

    # positive control: a server with range requests, the same file, through the cache
    served = _publish(https_server, large, "ranges_ok.root")
    ok_cache = tmp_path / "ok_cache"
    dataset = saetta.Dataset.open(
        served, storage_options={"https": https_server.storage_options}, cache=ok_cache
    )
    result = saetta.run(adl.q1, dataset, run_dir=False, progress=False)
    np.testing.assert_array_equal(result["q1_met"].view(flow=True), _local_q1_met(large))
    assert _blocks(ok_cache)


def test_a_block_that_is_not_what_was_asked_for_is_never_cached(
    plain_server: PlainServer, tmp_path: Path
) -> None:
    # passes the 2-byte probe, then answers a 1 MiB block with the whole file
    url = f"{plain_server.base_url}/liar/f.root"
    cache = tmp_path / "cache"
    for _ in range(2):
        out = _saetta("run", "adl.q1", url, "--cache", cache, home=tmp_path)
        line = _one_line_error(out, "StorageError", url)
        assert "does not seem to support HTTP range requests" in line
        assert "DeserializationError" not in line
        assert (cache / ".saetta-data-cache").is_file()  # the cache was in use...
        assert _blocks(cache) == []  # ...and holds no block
        assert [p.name for p in _files(cache)] == [".saetta-data-cache"]
