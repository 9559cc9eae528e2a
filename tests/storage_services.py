"""Real storage servers on localhost for tests: XRootD (root://), nginx (https://), SeaweedFS (s3://).

A thin layer over ``.ci/services/{xrootd,nginx,seaweedfs}.sh``: each fixture installs its service
if needed (apt-get / pip into this interpreter's venv; ``SAETTA_SERVICES_INSTALL=0`` turns that
off), starts it over a fresh temporary directory and yields a :class:`StorageServer`. Put files
into ``server.root`` and read them at ``server.url(name)`` with ``**server.storage_options``::

    shutil.copy(sample_root, xrootd_server.root)
    xrootd_server.sync()  # uploads for S3; a no-op for XRootD and HTTPS, which serve the directory
    before = xrootd_server.bytes_served()
    uproot.open(xrootd_server.url("sample.root"), **xrootd_server.storage_options)
    assert xrootd_server.bytes_served() - before > 0

``stop()`` / ``start()`` stop the server (by PID, waiting for the exit) and start it again on the
same port with the same data, certificate and credentials. The fixtures are session-scoped; they
skip only off Linux or when not root, and otherwise fail loudly. To use them, import them in
``conftest.py``: ``from storage_services import https_server, s3_server, xrootd_server``.

Importing this module sets the ``XRD_*`` variables of ``XRD_CLIENT_ENV`` (unless already set):
XRootD clients read them once, when the library initialises, and with the defaults a stopped
server makes a client retry for minutes and a restarted one stays unreachable for 30 minutes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SERVICES_DIR = Path(__file__).resolve().parents[1] / ".ci" / "services"

# XRootD client settings (read once, when the client library initialises). Defaults would make a
# read from a stopped server hang 120 s+ (5 retries x 120 s window), mark the host broken for
# 30 min after a connection error (a restarted server stays unreachable), and check timeouts
# only every 15 s. With these: stopped server -> OSError at once; frozen server -> OSError after
# 10 s; restarted server -> the next request (even on an already open file) works.
XRD_CLIENT_ENV = {
    "XRD_CONNECTIONRETRY": "1",
    "XRD_CONNECTIONWINDOW": "5",
    "XRD_REQUESTTIMEOUT": "10",
    "XRD_STREAMERRORWINDOW": "0",
    "XRD_TIMEOUTRESOLUTION": "1",
}
for _key, _value in XRD_CLIENT_ENV.items():
    os.environ.setdefault(_key, _value)

# service name -> (script, URL scheme, env var naming its state directory, ports it uses from PORT)
SERVICES: dict[str, tuple[str, str, str, int]] = {
    "xrootd": ("xrootd.sh", "root", "SAETTA_XROOTD_DIR", 1),
    "nginx": ("nginx.sh", "https", "SAETTA_NGINX_DIR", 1),
    "seaweedfs": ("seaweedfs.sh", "s3", "SAETTA_SEAWEEDFS_DIR", 14),
}

_installed: set[str] = set()


class ServiceError(RuntimeError):
    """A service script failed; the message carries its output."""


def _script_env(name: str, state_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if state_dir is not None:
        env[SERVICES[name][2]] = str(state_dir)
    if sys.prefix != sys.base_prefix:  # install into / find `weed` in the venv running the tests
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def run_script(name: str, *args: str, state_dir: Path | None = None, timeout: float = 120) -> str:
    """Run ``.ci/services/<name>.sh ARGS`` and return its stdout; raise ServiceError on failure."""
    script = SERVICES_DIR / SERVICES[name][0]
    try:
        done = subprocess.run(
            ["bash", str(script), *args],
            env=_script_env(name, state_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{script.name} {' '.join(args)} timed out after {timeout}s") from exc
    if done.returncode != 0:
        raise ServiceError(
            f"{script.name} {' '.join(args)} failed (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


def install_service(name: str) -> None:
    """``<name>.sh install`` once per process (idempotent, quick when already installed)."""
    if name in _installed or os.environ.get("SAETTA_SERVICES_INSTALL", "1") == "0":
        return
    run_script(name, "install", timeout=900)
    _installed.add(name)


def free_port(span: int = 1, low: int = 20000, high: int = 32000) -> int:
    """A port P such that P .. P+span-1 are all free (below Linux's ephemeral range)."""
    rng = int.from_bytes(os.urandom(4), "little")
    for attempt in range(200):
        port = low + (rng + attempt * 7919) % (high - low - span)
        if all(_port_free(p) for p in range(port, port + span)):
            return port
    raise ServiceError(f"no {span} consecutive free ports in [{low}, {high})")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))  # the wildcard address also collides with 127.0.0.1 listeners
        except OSError:
            return False
    return True


def _parse_info(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class StorageServer:
    """One running service over a local directory.

    ``base_url`` has no trailing slash: ``root://localhost:PORT//abs/dir``,
    ``https://127.0.0.1:PORT`` or ``s3://BUCKET``; ``url(name)`` appends a relative path.
    ``storage_options`` are the keyword arguments for ``uproot.open`` / ``fsspec`` (picklable).
    """

    name: str
    protocol: str
    port: int
    root: Path
    state_dir: Path
    base_url: str
    storage_options: dict[str, Any]
    info: dict[str, str]
    ca_file: Path | None = None
    _workdir: Path | None = field(default=None, repr=False)

    def url(self, relpath: str | os.PathLike[str] = "") -> str:
        rel = Path(relpath).as_posix().lstrip("/") if str(relpath) else ""
        if self.protocol == "https":
            return f"{self.base_url}/{quote(rel)}"
        return f"{self.base_url}/{rel}"

    def fs_path(self, relpath: str | os.PathLike[str] = "") -> str:
        """The path of ``relpath`` as ``filesystem()`` names it (e.g. for pyarrow, which does not
        strip ``root://host/`` or ``s3://``): ``/abs/dir/NAME``, the https URL, ``BUCKET/NAME``."""
        if self.protocol == "root":
            return (self.root / relpath).as_posix()
        if self.protocol == "s3":
            return self.url(relpath).removeprefix("s3://")
        return self.url(relpath)

    def filesystem(self) -> Any:
        """A fresh fsspec filesystem for this server. Name files by ``fs_path(...)``; ``open``
        also takes ``url(...)``, but fsspec-xrootd's ``ls``/``info`` do not."""
        import fsspec

        options = {**self.storage_options, "skip_instance_cache": True}
        if self.protocol == "root":
            options["hostid"] = f"localhost:{self.port}"
        return fsspec.filesystem(self.protocol, **options)

    def ssl_context(self) -> ssl.SSLContext:
        """For HTTPS: a context that trusts (only) this server's self-signed certificate."""
        if self.ca_file is None:
            raise ServiceError(f"{self.name} has no TLS certificate")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def sync(self) -> None:
        """Make files written under ``root`` visible on the server (uploads them for S3)."""
        if self.name == "seaweedfs":
            run_script(self.name, "sync", state_dir=self.state_dir)

    def bytes_served(self, settle: float = 0.05, timeout: float = 2.0) -> int:
        """Payload bytes the server has sent so far (cumulative across stop/start).

        XRootD: requested lengths of read/readV/pgread (trace log); nginx: response bodies
        (access log, GET ranges, listings, PROPFIND); SeaweedFS: S3 object bytes (metrics).
        Waits until two readings ``settle`` seconds apart agree, as servers log a request just
        after the client may already have its last byte.
        """
        last = self._bytes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self._bytes()
            if now == last:
                return now
            last = now
        return last

    def _bytes(self) -> int:
        return int(run_script(self.name, "bytes", state_dir=self.state_dir).strip() or 0)

    @property
    def running(self) -> bool:
        script = SERVICES_DIR / SERVICES[self.name][0]
        done = subprocess.run(
            ["bash", str(script), "status"],
            env=_script_env(self.name, self.state_dir),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Stop the server and wait for its process to exit (SIGKILL after a grace period)."""
        run_script(self.name, "stop", state_dir=self.state_dir, timeout=120)

    def start(self) -> None:
        """(Re)start on the same port, directory, certificate/credentials and data."""
        run_script(self.name, "start", str(self.root), str(self.port), state_dir=self.state_dir)
        self.info = _parse_info(run_script(self.name, "info", state_dir=self.state_dir))
        if self.protocol == "root":
            forget_xrootd_file_handles()

    def close(self) -> None:
        """Stop, and remove the temporary directory (kept if ``SAETTA_SERVICES_KEEP=1``)."""
        try:
            self.stop()
        finally:
            if self._workdir is not None and os.environ.get("SAETTA_SERVICES_KEEP") != "1":
                shutil.rmtree(self._workdir, ignore_errors=True)


def forget_xrootd_file_handles() -> None:
    """Drop the open-file handles that fsspec-xrootd caches in this process.

    fsspec-xrootd keeps read-only handles per filesystem instance (30 s TTL) and keeps one whose
    read failed; once the server is back, that dead handle raises ``ValueError: I/O operation on
    closed file``. ``StorageServer.start()`` calls this after a restart (the server is up, so
    dropping live handles closes them cleanly).
    """
    module = sys.modules.get("fsspec_xrootd.xrootd")
    if module is None:
        return
    for fs in list(module.XRootDFileSystem._cache.values()):
        handles = getattr(fs, "_readonly_filehandle_cache", None)
        if handles is not None:
            handles._cache.clear()


def _https_options(ca_file: Path) -> dict[str, Any]:
    # aiohttp's Fingerprint pins the server certificate (SHA-256 of its DER form). Unlike an
    # SSLContext it pickles, so the options can travel to worker processes.
    # Use {"ssl": server.ssl_context()} for full CA + hostname verification in-process.
    import aiohttp

    der = ssl.PEM_cert_to_DER_cert(ca_file.read_text())
    return {
        "ssl": aiohttp.Fingerprint(hashlib.sha256(der).digest()),
        # a frozen server: fail after 10 s without data instead of aiohttp's 300 s total
        "client_kwargs": {"timeout": aiohttp.ClientTimeout(total=None, connect=5, sock_read=10)},
    }


def start_service(
    name: str,
    root: Path | None = None,
    port: int | None = None,
    *,
    install: bool = True,
) -> StorageServer:
    """Start service ``name`` ("xrootd", "nginx" or "seaweedfs") and return its handle.

    Without ``root``, serves a fresh directory (mode 0755, so XRootD's unprivileged daemon can
    read it) in a new temporary directory that ``close()`` removes; the state directory (config,
    logs, pid, certificate, S3 data) is made there too.
    """
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {sorted(SERVICES)}")
    _, protocol, _, span = SERVICES[name]
    if install:
        install_service(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"saetta-{name}-"))
    workdir.chmod(0o755)
    if root is None:
        root = workdir / "served"
        root.mkdir()
        root.chmod(0o755)
    state_dir = workdir / "state"
    state_dir.mkdir()
    try:
        for attempt in range(3):
            chosen = free_port(span) if port is None else port
            try:
                run_script(name, "start", str(root), str(chosen), state_dir=state_dir)
                break
            except ServiceError as exc:  # lost a race for a free port: pick another
                if port is not None or "in use" not in str(exc) or attempt == 2:
                    raise
        port = chosen
        info = _parse_info(run_script(name, "info", state_dir=state_dir))
    except BaseException:
        try:
            run_script(name, "stop", state_dir=state_dir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    root = Path(info["DIR"])
    ca_file: Path | None = None
    storage_options: dict[str, Any]
    if name == "xrootd":
        base_url = f"root://localhost:{port}/{root.as_posix()}"
        storage_options = {}
    elif name == "nginx":
        base_url = f"https://127.0.0.1:{port}"
        ca_file = Path(info["CA_FILE"])
        storage_options = _https_options(ca_file)
    else:
        base_url = f"s3://{info['BUCKET']}"
        storage_options = {
            "key": info["ACCESS_KEY"],
            "secret": info["SECRET_KEY"],
            "client_kwargs": {"endpoint_url": info["ENDPOINT"], "region_name": info["REGION"]},
            # s3fs nests two 5-fold retry loops around botocore's attempts: with botocore's
            # defaults (60 s read timeout, 5 attempts) a read from a frozen (SIGSTOPped) server
            # hangs ~2 h; with these ~9 min (measured 524 s). A stopped server: error in ~2 s.
            "config_kwargs": {
                "connect_timeout": 5,
                "read_timeout": 10,
                "retries": {"total_max_attempts": 2},
            },
        }
    return StorageServer(
        name=name,
        protocol=protocol,
        port=port,
        root=root,
        state_dir=state_dir,
        base_url=base_url,
        storage_options=storage_options,
        info=info,
        ca_file=ca_file,
        _workdir=workdir,
    )


def _require_linux_root() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("storage services run on Linux only")
    if os.geteuid() != 0:
        pytest.skip("storage services need root (apt-get, daemons)")


def _serve(name: str) -> Iterator[StorageServer]:
    _require_linux_root()
    server = start_service(name)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def xrootd_server() -> Iterator[StorageServer]:
    """XRootD over a fresh directory: ``root://localhost:PORT//dir/NAME``, no options needed."""
    yield from _serve("xrootd")


@pytest.fixture(scope="session")
def https_server() -> Iterator[StorageServer]:
    """nginx HTTPS + WebDAV over a fresh directory, self-signed certificate pinned in options.

    Files under ``root / "private"`` are served at ``/private/`` behind HTTP basic auth, as
    ``info["AUTH_USER"]`` with ``info["AUTH_PASSWORD"]``."""
    yield from _serve("nginx")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[StorageServer]:
    """SeaweedFS S3 with one identity; ``root`` is mirrored into the bucket by ``sync()``."""
    yield from _serve("seaweedfs")
