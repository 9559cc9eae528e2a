"""The data lake: datasets read over XRootD, HTTPS and S3 from real servers on localhost,
with the local cache tier. Servers come from ``.ci/services`` (tests/storage_services.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from adl_reference import reference_histograms
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod

pytestmark = pytest.mark.slow

SAETTA = str(Path(sys.executable).with_name("saetta"))
SERVERS = ["xrootd_server", "https_server", "s3_server"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lake")
    return {
        "root": generate_nanoaod(folder / "lake.root", 20_000, seed=11, chunk_events=2_500),
        "parquet": generate_nanoaod(folder / "lake.parquet", 20_000, seed=11, chunk_events=2_500),
    }


@pytest.fixture(scope="module")
def expected(files: dict[str, Path]) -> dict[str, np.ndarray]:
    return reference_histograms(files["root"])


def _publish(server, path: Path, name: str | None = None) -> str:  # type: ignore[no-untyped-def]
    shutil.copy(path, server.root / (name or path.name))
    server.sync()
    return str(server.url(name or path.name))


def _options(server) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    return {server.protocol: server.storage_options}


@pytest.mark.parametrize("fixture", SERVERS)
@pytest.mark.parametrize("kind", ["root", "parquet"])
def test_adl_over_the_network_equals_local(
    fixture: str,
    kind: str,
    files: dict[str, Path],
    expected: dict[str, np.ndarray],
    request: pytest.FixtureRequest,
) -> None:
    server = request.getfixturevalue(fixture)
    url = _publish(server, files[kind])
    dataset = saetta.Dataset.open(url, storage_options=_options(server))
    result = saetta.run(adl.analysis, dataset, chunk_size=5_000, run_dir=False, progress=False)
    assert result.report.events_processed == 20_000
    for name, values in expected.items():
        np.testing.assert_array_equal(flow_values(result, name), values, err_msg=f"{url} {name}")


@pytest.mark.parametrize("fixture", SERVERS)
def test_only_the_used_byte_ranges_are_read(
    fixture: str, files: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    url = _publish(server, files["root"], "ranges.root")
    before = server.bytes_served()
    saetta.run(
        adl.q1,
        saetta.Dataset.open(url, storage_options=_options(server)),
        run_dir=False,
        progress=False,
    )
    served = server.bytes_served() - before
    assert 0 < served < files["root"].stat().st_size / 5  # MET_pt only, not the jets


@pytest.mark.parametrize("fixture", SERVERS)
def test_second_run_reads_nothing_from_the_server(
    fixture: str,
    files: dict[str, Path],
    expected: dict[str, np.ndarray],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    server = request.getfixturevalue(fixture)
    url = _publish(server, files["root"], "cached.root")
    cache = tmp_path / "cache"
    results = []
    served = []
    for _ in range(2):
        before = server.bytes_served()
        dataset = saetta.Dataset.open(url, storage_options=_options(server), cache=cache)
        results.append(saetta.run(adl.analysis, dataset, run_dir=False, progress=False))
        served.append(server.bytes_served() - before)
    assert served[0] > 0
    assert served[1] == 0
    assert results[1].report.data_cache[1] == 0  # no misses
    assert results[1].report.data_cache[0] > 0
    for result in results:
        for name, values in expected.items():
            np.testing.assert_array_equal(flow_values(result, name), values, err_msg=name)


def test_replaced_remote_file_is_not_served_stale(xrootd_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    first = generate_nanoaod(tmp_path / "v1.root", 3_000, seed=1)
    second = generate_nanoaod(tmp_path / "v2.root", 3_000, seed=2)
    url = _publish(xrootd_server, first, "replaced.root")
    saetta.run(adl.q1, saetta.Dataset.open(url, cache=cache), run_dir=False, progress=False)
    _publish(xrootd_server, second, "replaced.root")
    before = xrootd_server.bytes_served()
    result = saetta.run(
        adl.q1, saetta.Dataset.open(url, cache=cache), run_dir=False, progress=False
    )
    assert xrootd_server.bytes_served() > before  # read again, from the server
    np.testing.assert_array_equal(
        flow_values(result, "q1_met"), reference_histograms(second)["q1_met"]
    )


def test_eviction_keeps_the_cache_bound(
    xrootd_server, files: dict[str, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from saetta.storage import cache_info

    url = _publish(xrootd_server, files["root"], "evicted.root")
    cache = tmp_path / "cache"
    bound = 1_500_000
    result = saetta.run(
        adl.analysis,
        saetta.Dataset.open(url, cache=cache, cache_size=bound),
        run_dir=False,
        progress=False,
    )
    assert result.report.complete
    info = cache_info(cache)
    assert 0 < info["bytes"] <= bound
    assert files["root"].stat().st_size > bound  # the bound really bit


def test_two_processes_fill_the_cache_at_once(
    https_server,
    files: dict[str, Path],
    expected: dict[str, np.ndarray],
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = _publish(https_server, files["root"], "shared.root")
    cache = tmp_path / "cache"
    code = f"""
import json, sys, pickle
sys.path.insert(0, {str(Path(__file__).parent)!r})
import saetta
from saetta.analyses import adl
from storage_services import _https_options
from pathlib import Path
options = {{"https": _https_options(Path({str(https_server.ca_file)!r}))}}
ds = saetta.Dataset.open({url!r}, storage_options=options, cache={str(cache)!r})
r = saetta.run(adl.analysis, ds, chunk_size=2500, run_dir=False, progress=False)
print(json.dumps({{k: r[k].view(flow=True).tolist() for k in r}}))
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        got = json.loads(out)
        for name, values in expected.items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)
    # no half-written blocks left: only the marker that makes the folder saetta's
    assert [p.name for p in cache.rglob(".*") if p.is_file()] == [".saetta-data-cache"]
    before = https_server.bytes_served()
    dataset = saetta.Dataset.open(url, storage_options=_options(https_server), cache=cache)
    again = saetta.run(adl.analysis, dataset, run_dir=False, progress=False)
    assert https_server.bytes_served() == before
    for name, values in expected.items():
        np.testing.assert_array_equal(flow_values(again, name), values, err_msg=name)


def test_wrong_s3_credentials_name_the_url_and_hide_the_secret(
    s3_server,
    files: dict[str, Path],  # type: ignore[no-untyped-def]
) -> None:
    url = _publish(s3_server, files["root"], "secret.root")
    options = dict(s3_server.storage_options)
    options["secret"] = "wrong-secret-value-12345"
    with pytest.raises(saetta.SaettaError) as info:
        saetta.Dataset.open(url, storage_options={"s3": options})
    message = str(info.value)
    assert "secret.root" in message
    assert "wrong-secret-value-12345" not in message
    assert s3_server.storage_options["secret"] not in message
    cli = subprocess.run(
        [SAETTA, "run", "adl.q1", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "AWS_ACCESS_KEY_ID": options["key"],
            "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-12345",
            "AWS_ENDPOINT_URL": options["client_kwargs"]["endpoint_url"],
        },
    )
    assert cli.returncode == 1
    assert "wrong-secret-value-12345" not in cli.stderr + cli.stdout
    assert cli.stderr.startswith("saetta: error:")
    assert "secret.root" in cli.stderr


def test_server_down_for_good_is_a_clear_error(tmp_path: Path, files: dict[str, Path]) -> None:
    from storage_services import start_service

    server = start_service("xrootd")
    try:
        url = _publish(server, files["root"], "gone.root")
        dataset = saetta.Dataset.open(url)
        server.stop()
        with pytest.raises(saetta.UnitError, match=r"gone\.root") as info:
            saetta.run(adl.q1, dataset, run_dir=False, progress=False)
        assert info.value.failures[0].error == "StorageError"  # type: ignore[attr-defined]
    finally:
        server.close()


def slow_q1(events):  # type: ignore[no-untyped-def]
    import time

    time.sleep(0.4)
    return adl.q1(events)


def test_server_restarted_mid_run_the_run_completes(
    files: dict[str, Path], expected: dict[str, np.ndarray]
) -> None:
    import threading
    import time

    from storage_services import start_service

    server = start_service("xrootd")
    try:
        url = _publish(server, files["root"], "restarted.root")
        dataset = saetta.Dataset.open(url)

        def outage() -> None:
            time.sleep(0.6)  # a unit or so into the run
            server.stop()
            time.sleep(2.0)
            server.start()

        thread = threading.Thread(target=outage)
        thread.start()
        result = saetta.run(slow_q1, dataset, chunk_size=2_500, run_dir=False, progress=False)
        thread.join()
        assert result.report.complete
        np.testing.assert_array_equal(flow_values(result, "q1_met"), expected["q1_met"])
    finally:
        server.close()
