"""The matched-filter search: its SNR against PyCBC's matched_filter, triggers that do
not depend on where windows are cut, injections found once at the right time and SNR,
and the whole search through saetta.run on generated strain files."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from pycbc_peer import run_peer

import saetta
from saetta.analyses.gw import Search, search_window, snr_series
from saetta.astro.psd import aligo_psd
from saetta.astro.waveforms import TemplateBank, default_bank, sigma, taylorf2
from saetta.errors import AnalysisError

RATE = 2048.0


def _strain(
    seconds: float, chirps: list[tuple[float, float, float, float]], seed: int
) -> np.ndarray:
    """Gaussian noise of the aLIGO PSD plus chirps (time, mass1, mass2, optimal SNR),
    made in the frequency domain: independent of the search's own code but for taylorf2."""
    n = int(seconds * RATE)
    f = np.arange(n // 2 + 1) * RATE / n
    df = f[1]
    psd = aligo_psd(np.maximum(f, 1.0))
    rng = np.random.default_rng(seed)
    scale = np.sqrt(psd / (4 * df)) * RATE
    tilde = (rng.normal(size=len(f)) + 1j * rng.normal(size=len(f))) * scale
    tilde[f < 10] = 0
    tilde[-1] = 0
    for t, m1, m2, snr in chirps:
        h = taylorf2(m1, m2, f, 20.0)
        h[-1] = 0
        h *= snr / sigma(h, psd, df, 20.0)
        tilde += h * np.exp(-2j * np.pi * f * t) * RATE
    return np.fft.irfft(tilde, n)


def test_snr_series_matches_pycbc_matched_filter() -> None:
    m1, m2 = 18.0, 12.0
    x = _strain(32.0, [(20.0, m1, m2, 20.0)], seed=3)
    bank = TemplateBank(((m1, m2),))
    script = """
    from pycbc.types import TimeSeries
    from pycbc.psd import welch, interpolate, inverse_spectrum_truncation
    from pycbc.filter import matched_filter
    from pycbc.waveform import get_fd_waveform
    rate = float(inputs["rate"])
    data = TimeSeries(inputs["x"], delta_t=1.0 / rate)
    psd = welch(data, seg_len=int(4 * rate), seg_stride=int(2 * rate))
    psd = interpolate(psd, data.delta_f)
    psd = inverse_spectrum_truncation(psd, int(4 * rate), low_frequency_cutoff=20.0,
                                      trunc_method="hann")
    hp, _ = get_fd_waveform(approximant="TaylorF2", mass1=float(inputs["m1"]),
                            mass2=float(inputs["m2"]), delta_f=data.delta_f, f_lower=20.0)
    hp.resize(len(data) // 2 + 1)
    outputs["snr"] = matched_filter(hp, data, psd=psd, low_frequency_cutoff=20.0).numpy()
    """
    inputs = {"x": x, "rate": np.array(RATE), "m1": np.array(m1), "m2": np.array(m2)}
    theirs = run_peer(script, inputs)["snr"]
    trusted = slice(int(12 * RATE), int(28 * RATE))  # away from the wrapped edges
    for precision in ("double", "single"):
        z, which, d = snr_series(x, RATE, bank=bank, precision=precision)
        assert d > 1
        assert np.all(which == 0)
        ours, reference = (
            np.abs(z[trusted.start // d : trusted.stop // d]),
            np.abs(theirs[trusted][::d]),
        )
        assert np.max(np.abs(ours - reference)) < 0.01 * reference.max()
        peak, their_peak = np.argmax(ours), np.argmax(np.abs(theirs[trusted]))
        assert abs(peak * d - their_peak) <= d
        assert ours.max() == pytest.approx(np.abs(theirs[trusted]).max(), rel=0.01)
        # The complex SNR, phase included, is PyCBC's (their series at our samples).
        zt = z[trusted.start // d : trusted.stop // d]
        assert np.max(np.abs(zt - theirs[trusted][::d])) < 0.01 * reference.max()


def _windows(x: np.ndarray, cuts: list[int], pad: int) -> list[tuple[np.ndarray, int, int, float]]:
    """The format's windows: own spans between ``cuts``, padded by ``pad`` samples."""
    bounds = [0, *cuts, len(x)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        a, b = max(lo - pad, 0), min(hi + pad, len(x))
        out.append((x[a:b], lo - a, hi - lo, lo / RATE))
    return out


def _triggers(x: np.ndarray, cuts: list[int], bank: TemplateBank) -> dict[str, np.ndarray]:
    parts = [
        search_window(s, RATE, before, span, t0, bank=bank, threshold=7.0)[0]
        for s, before, span, t0 in _windows(x, cuts, int(16 * RATE))
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.fixture(scope="module")
def bank() -> TemplateBank:
    return default_bank()


CHIRPS = [(40.0, 14.0, 12.0, 30.0), (64.0, 25.0, 11.0, 12.0), (100.0, 28.0, 27.0, 9.0)]


def test_a_boundary_at_an_injection_changes_nothing(bank: TemplateBank) -> None:
    x = _strain(160.0, CHIRPS, seed=5)
    whole = _triggers(x, [], bank)
    cut = _triggers(x, [int(64 * RATE)], bank)  # right at the second chirp's coalescence
    assert len(whole["time"]) >= len(CHIRPS)
    np.testing.assert_array_equal(cut["time"], whole["time"])
    np.testing.assert_array_equal(cut["template"], whole["template"])
    # Each window estimates its own PSD from its own data (80 and 112 s here, 160 s
    # whole): the estimates differ by their statistical error, and the SNRs by ~3 %.
    # Cutting a run into units never does this: units are ranges of the same windows.
    np.testing.assert_allclose(cut["snr"], whole["snr"], rtol=0.05)


def test_injections_found_once_at_their_time_and_snr(bank: TemplateBank) -> None:
    """Every chirp of optimal SNR >= 8 is found within 10 ms, exactly once.

    Gaussian noise moves a recovered SNR by about +-1 (the noise term of the matched
    filter has unit variance), so at SNR 8-12 a 10 % check would test the noise, not
    the search; the SNR is checked for the chirps of SNR >= 25, where 10 % is 2.5
    standard deviations or more, and the bank's loss (< 3 %) fits within it.
    """
    chirps = [
        (20.0 + 25.0 * i, 10 + 2.0 * i, 10 + 1.5 * i, s) for i, s in enumerate([8, 30, 10, 40, 25])
    ]
    x = _strain(160.0, chirps, seed=9)
    found = _triggers(x, [int(64 * RATE), int(128 * RATE)], bank)
    for t, _, _, snr in chirps:
        near = np.flatnonzero(np.abs(found["time"] - t) < 1.0)
        assert len(near) == 1, (t, found["time"][near])
        assert abs(found["time"][near[0]] - t) < 0.010
        if snr >= 25:
            assert found["snr"][near[0]] == pytest.approx(snr, rel=0.10)


def test_search_rejects_short_windows_and_unknown_precision(bank: TemplateBank) -> None:
    x = _strain(16.0, [], seed=1)
    assert snr_series(x, RATE, bank=bank)[2] >= 1  # positive control
    with pytest.raises(AnalysisError, match="shorter than two PSD segments"):
        snr_series(x[: int(6 * RATE)], RATE, bank=bank)
    with pytest.raises(AnalysisError, match="unknown precision 'half'"):
        snr_series(x, RATE, bank=bank, precision="half")


def test_search_pickles_without_its_template_cache() -> None:
    search = Search(bank=TemplateBank(((12.0, 10.0),)))
    search._on_grid(int(32 * RATE), RATE)
    copy = pickle.loads(pickle.dumps(search))
    assert copy == search
    assert copy._cache == {}
    assert search._cache


strain_sim = pytest.importorskip("saetta.astro.strain_sim")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> object:
    folder = tmp_path_factory.mktemp("strain")
    t0 = 1_000_000_000
    chirps = [
        {"time": t0 + 40.3, "mass1": 20.0, "mass2": 15.0, "snr": 30.0},
        {"time": t0 + 128.0, "mass1": 12.0, "mass2": 11.0, "snr": 15.0},  # at a window boundary
        {"time": t0 + 200.7, "mass1": 28.0, "mass2": 22.0, "snr": 9.0},
    ]
    return strain_sim.generate_strain(
        folder, duration=256, rate=2048, seed=4, injections=chirps, gps_start=t0
    )


@pytest.mark.slow
def test_search_through_saetta_run(generated: object) -> None:
    from saetta.formats.strain import windows

    files = generated.paths  # type: ignore[attr-defined]
    dataset = saetta.Dataset.open(
        [str(p) for p in files], format="strain", tree=windows(64.0, 16.0)
    )
    search = Search(threshold=7.0)
    one = saetta.run(search, dataset, chunk_size=1, run_dir=False)
    two = saetta.run(search, dataset, executor="processes:2", chunk_size=3, run_dir=False)
    assert one["triggers"] == two["triggers"]
    assert one["windows"] == 4
    triggers = one["triggers"]
    assert np.all(np.diff(triggers["time"]) > 0)
    for chirp in generated.chirps:  # type: ignore[attr-defined]
        near = np.flatnonzero(np.abs(triggers["time"] - chirp.time) < 1.0)
        assert len(near) == 1
        assert abs(triggers["time"][near[0]] - chirp.time) < 0.010
