"""TaylorF2 chirps, the Welch PSD, inverse-spectrum truncation and the default bank,
each against PyCBC 2.11.0 (run in its own environment, see tests/pycbc_peer.py) or an
independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
from pycbc_peer import run_peer

from saetta.astro.psd import aligo_psd, truncate_inverse, welch
from saetta.astro.waveforms import TemplateBank, default_bank, sigma, taylorf2
from saetta.errors import AnalysisError

PAIRS = np.array([[10.0, 10.0], [30.0, 10.0], [25.0, 18.0], [14.0, 11.5]])
DF = 1.0 / 32


def _match(a: np.ndarray, b: np.ndarray, psd: np.ndarray) -> float:
    # Overlap maximised over time and phase: |ifft(a* b / S)| peak over the norms.
    n = 2 * (len(a) - 1)
    c = np.fft.ifft(np.conj(a) * b / psd, n=n) * n
    norm = np.sqrt(np.sum(np.abs(a) ** 2 / psd) * np.sum(np.abs(b) ** 2 / psd))
    return float(np.abs(c).max() / norm)


@pytest.fixture(scope="module")
def pycbc_waveforms() -> dict[str, np.ndarray]:
    script = """
    from pycbc.waveform import get_fd_waveform
    n = int(inputs["n"])
    out = np.zeros((len(inputs["pairs"]), n), dtype=complex)
    for i, (m1, m2) in enumerate(inputs["pairs"]):
        hp, _ = get_fd_waveform(approximant="TaylorF2", mass1=m1, mass2=m2,
                                delta_f=float(inputs["df"]), f_lower=20.0, distance=1.0)
        k = min(len(hp), n)
        out[i, :k] = hp.numpy()[:k]
    outputs["hp"] = out
    """
    return run_peer(script, {"pairs": PAIRS, "df": np.array(DF), "n": np.array(int(1024 / DF) + 1)})


def test_taylorf2_matches_pycbc(pycbc_waveforms: dict[str, np.ndarray]) -> None:
    f = np.arange(pycbc_waveforms["hp"].shape[1]) * DF
    psd = aligo_psd(np.maximum(f, 1.0))
    for (m1, m2), theirs in zip(PAIRS, pycbc_waveforms["hp"], strict=True):
        mine = taylorf2(m1, m2, f, 20.0)
        assert np.array_equal(np.abs(mine) > 0, np.abs(theirs) > 0)  # same band
        assert _match(mine, theirs, psd) > 0.999
        assert sigma(mine, psd, DF, 20.0) == pytest.approx(sigma(theirs, psd, DF, 20.0), rel=1e-3)
        # Not just the same norm: the same complex values, phase included.
        assert np.max(np.abs(mine - theirs)) < 1e-6 * np.max(np.abs(theirs))


def test_taylorf2_newtonian_amplitude_and_distance() -> None:
    """Independently: |h(f)| = sqrt(5/24) pi^(-2/3) (G Mc)^(5/6) f^(-7/6) / (c^(3/2) D)."""
    g, c, msun, mpc = 6.67430e-11, 299792458.0, 1.988409870698051e30, 3.085677581491367e22
    m1, m2, f = 20.0, 12.0, np.array([40.0, 80.0])
    chirp = (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2 * msun
    expected = (
        np.sqrt(5 / 24) * np.pi ** (-2 / 3) * (g * chirp) ** (5 / 6) * f ** (-7 / 6) / c**1.5 / mpc
    )
    assert np.abs(taylorf2(m1, m2, f, 20.0)) == pytest.approx(expected, rel=1e-4)
    assert np.abs(taylorf2(m1, m2, f, 20.0, distance=400.0)) == pytest.approx(
        expected / 400, rel=1e-4
    )


def test_taylorf2_rejects_bad_masses() -> None:
    assert np.any(taylorf2(10.0, 10.0, np.array([50.0]), 20.0) != 0)  # positive control
    with pytest.raises(AnalysisError, match="masses -1"):
        taylorf2(-1.0, 10.0, np.array([50.0]), 20.0)


def test_aligo_psd_is_positive_with_its_minimum_near_200_hz() -> None:
    f = np.geomspace(1.0, 4096.0, 500)
    s = aligo_psd(f)
    assert np.all(np.isfinite(s))
    assert np.all(s > 0)
    assert 100 < f[np.argmin(s)] < 400
    assert 3e-24 < np.sqrt(s.min()) < 6e-24
    with pytest.raises(AnalysisError, match="positive"):
        aligo_psd(np.array([0.0, 10.0]))


@pytest.mark.parametrize("average", ["median", "mean"])
def test_welch_matches_pycbc(average: str) -> None:
    rng = np.random.default_rng(7)
    rate = 1024.0
    # Coloured noise, and a length that does not tile into segments (the excess is trimmed).
    x = np.convolve(rng.normal(size=int(70.3 * rate)), [1.0, 0.6, -0.3], mode="same")
    f, mine = welch(x, rate, segment=4.0, average=average)
    script = """
    from pycbc.types import TimeSeries
    from pycbc.psd import welch
    ts = TimeSeries(inputs["x"], delta_t=1.0 / float(inputs["rate"]))
    p = welch(ts, seg_len=4096, seg_stride=2048, avg_method=str(inputs["average"]))
    outputs["psd"] = p.numpy()
    outputs["df"] = np.array(p.delta_f)
    """
    theirs = run_peer(script, {"x": x, "rate": np.array(rate), "average": np.array(average)})
    assert f[1] == pytest.approx(float(theirs["df"]))
    np.testing.assert_allclose(mine, theirs["psd"], rtol=1e-10)


def test_welch_of_white_noise_is_flat() -> None:
    """Independently of PyCBC: unit-variance white noise has S = 2 / rate."""
    rng = np.random.default_rng(2)
    _f, p = welch(rng.normal(size=256 * 512), 256.0, segment=2.0, average="mean")
    assert np.mean(p[1:-1]) == pytest.approx(2 / 256, rel=0.02)
    with pytest.raises(AnalysisError, match="cannot hold"):
        welch(np.zeros(100), 256.0, segment=2.0)
    with pytest.raises(AnalysisError, match="unknown average 'mode'"):
        welch(np.zeros(1024), 256.0, segment=2.0, average="mode")


def test_truncate_inverse_matches_pycbc() -> None:
    df, n = 1.0 / 16, 16 * 1024 // 2 + 1
    f = np.arange(n) * df
    psd = aligo_psd(np.maximum(f, 1.0))
    mine = truncate_inverse(psd, 4 * 1024, 20.0, df)
    script = """
    from pycbc.types import FrequencySeries
    from pycbc.psd import inverse_spectrum_truncation
    p = FrequencySeries(inputs["psd"], delta_f=float(inputs["df"]))
    outputs["psd"] = inverse_spectrum_truncation(p, 4096, low_frequency_cutoff=20.0,
                                                 trunc_method="hann").numpy()
    """
    theirs = run_peer(script, {"psd": psd, "df": np.array(df)})["psd"]
    band = slice(int(20 / df), n - 1)
    np.testing.assert_allclose(mine[band], theirs[band], rtol=1e-8)
    # The truncation smooths but keeps the PSD's shape within the band.
    assert np.median(np.abs(mine[band] / psd[band] - 1)) < 0.05


def test_default_bank_loses_under_3_percent() -> None:
    """Random sources in the covered range each match some template to >= 0.97."""
    bank = default_bank()
    assert 50 < len(bank) < 400
    assert all(10 - 1e-6 <= m2 <= m1 <= 30 + 1e-6 for m1, m2 in bank)
    df = 1.0 / 16
    f = np.arange(16 * 512 + 1) * df
    psd = aligo_psd(np.maximum(f, 1.0))
    keep = f >= 20
    templates = np.array([taylorf2(m1, m2, f, 20.0) for m1, m2 in bank])[:, keep]
    norms = np.sqrt(np.sum(np.abs(templates) ** 2 / psd[keep], axis=1))
    rng = np.random.default_rng(11)
    for m1, m2 in [(29.0, 28.0), (10.2, 10.0), *rng.uniform(10, 30, (8, 2))]:
        h = taylorf2(m1, m2, f, 20.0)[keep]
        n = 2 * len(f)
        c = np.fft.ifft(np.conj(templates) * h / psd[keep], n=n, axis=1) * n
        best = np.abs(c).max(axis=1) / norms / np.sqrt(np.sum(np.abs(h) ** 2 / psd[keep]))
        assert best.max() > 0.97, (m1, m2)


def test_bank_rejects_empty_and_negative() -> None:
    assert len(TemplateBank(((12.0, 10.0),))) == 1  # positive control
    with pytest.raises(AnalysisError, match="empty"):
        TemplateBank(())
    with pytest.raises(AnalysisError, match=r"\(5.0, -1.0\)"):
        TemplateBank(((5.0, -1.0),))
