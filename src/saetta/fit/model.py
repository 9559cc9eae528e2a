"""Stage: fit (layer 8) — :func:`build_workspace`: the AGC ttbar HistFactory model as a
pyhf workspace, one channel per region, its samples' modifiers (``mu``, luminosity,
staterror, the histosys of the variations and alternative samples) and its data (the
data sample, Asimov or given counts); with the pyhf helpers the fit and the plots share.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from saetta.errors import SaettaError
from saetta.fit.inputs import NOMINAL, FitInput
from saetta.fit.variations import _ALTERNATIVES, _SYSTEMATICS

POI = "mu"
_POI_BOUNDS = (0.0, 10.0)
_LUMINOSITY = {"name": "Luminosity", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}
_MEASUREMENT = "AGC ttbar"
#: The largest relative Monte Carlo statistical uncertainty of a bin (staterror).
_MAX_STATERROR = 1.0
#: Each sample's expected yield per bin is clipped below at this value (HistFactory's
#: positive-definite interpolation; pyhf's ``clip_sample_data``).
_CLIP_SAMPLE_DATA = 0.0
_PYHF_INSTALL = "saetta fit needs pyhf, iminuit and cabinetry: pip install 'saetta[agc]'"


def _pyhf() -> Any:
    try:
        import pyhf
    except ImportError as exc:
        raise SaettaError(_PYHF_INSTALL) from exc
    return pyhf


def _clipped(values: np.ndarray) -> list[float]:
    return np.clip(values, 0.0, None).tolist()  # type: ignore[no-any-return]


def _template(values: np.ndarray, nominal: np.ndarray) -> list[float]:
    """A histosys template: clipped at 0, and 0 where the (clipped) nominal is 0."""
    template = np.where(nominal > 0, np.clip(values, 0.0, None), 0.0)
    return template.tolist()  # type: ignore[no-any-return]


def _histosys(
    name: str, nominal: np.ndarray, up: np.ndarray, down: np.ndarray | None
) -> dict[str, Any] | None:
    """A histosys modifier (``down`` None: symmetrised), or None when it changes nothing."""
    down = 2 * nominal - up if down is None else down
    hi, lo = _template(up, nominal), _template(down, nominal)
    base = _clipped(nominal)
    if all(np.allclose(side, base, rtol=1e-10, atol=0) for side in (hi, lo)):
        return None
    return {"name": name, "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}


def _alternatives(fit_input: FitInput, sample: str, region: str) -> list[dict[str, Any]]:
    sides: dict[str, dict[str, np.ndarray]] = {}
    for info in fit_input.samples.values():
        if info.variation_of != sample:
            continue
        if info.variation not in _ALTERNATIVES:
            msg = (
                f"sample {info.name!r}: unknown variation {info.variation!r} of {sample!r}; "
                f"known: {', '.join(sorted(_ALTERNATIVES))}"
            )
            raise SaettaError(msg)
        modifier, side = _ALTERNATIVES[info.variation]
        sides.setdefault(modifier.format(sample), {})[side] = fit_input.values(info.name, region)
    nominal = fit_input.values(sample, region)
    modifiers = []
    for modifier, found in sides.items():
        up = found.get("up", 2 * nominal - found.get("down", nominal))
        modifiers.append(_histosys(modifier, nominal, up, found.get("down")))
    return [m for m in modifiers if m is not None]


def _channel(fit_input: FitInput, region: str) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    staterrors: list[tuple[dict[str, Any], np.ndarray]] = []
    for info in fit_input.samples.values():
        if not info.is_nominal_mc:
            continue
        nominal = fit_input.values(info.name, region)
        if np.clip(nominal, 0.0, None).sum() <= 0:
            continue
        staterror = {"name": f"staterror_{region}", "type": "staterror", "data": None}
        variances = fit_input.histograms[info.name, region, NOMINAL][1]
        # no Monte Carlo uncertainty where the sample has no yield (none or clipped)
        staterrors.append((staterror, np.where(nominal > 0, np.sqrt(variances), 0.0)))
        modifiers: list[dict[str, Any] | None] = [
            {"name": POI, "type": "normfactor", "data": None} if info.role == "signal" else None,
            _LUMINOSITY,
            staterror,
        ]
        for s in _SYSTEMATICS:
            if s.samples is None or info.name in s.samples:
                down = None if s.down is None else fit_input.values(info.name, region, s.down)
                modifiers.append(
                    _histosys(s.name, nominal, fit_input.values(info.name, region, s.up), down)
                )
        modifiers += _alternatives(fit_input, info.name, region)
        data = _clipped(nominal)
        samples.append({"name": info.name, "data": data, "modifiers": [m for m in modifiers if m]})
    if not samples:
        msg = f"region {region!r} has no Monte Carlo sample with events; nothing to fit there"
        raise SaettaError(msg)
    # pyhf's relative uncertainty of a bin: sqrt(sum of uncertainties^2) / sum of yields;
    # where it exceeds _MAX_STATERROR, every sample's uncertainty is scaled down to it
    total = _MAX_STATERROR * np.sum([s["data"] for s in samples], axis=0)
    spread = np.sqrt(np.sum([u**2 for _, u in staterrors], axis=0))
    scale = np.divide(total, spread, out=np.ones_like(total), where=spread > total)
    for staterror, uncertainty in staterrors:
        staterror["data"] = (uncertainty * scale).tolist()
    return {"name": region, "samples": samples}


def _workspace(spec: Mapping[str, Any]) -> Any:
    """``spec`` as a :class:`pyhf.Workspace`, validated against pyhf's schema."""
    pyhf = _pyhf()
    invalid = tuple(
        getattr(pyhf.exceptions, n)
        for n in ("InvalidSpecification", "InvalidModel", "InvalidModifier", "InvalidNameReuse")
    )
    try:
        return pyhf.Workspace(dict(spec))
    except invalid as exc:
        msg = f"not a valid pyhf workspace: {' '.join(str(exc).split())[:300]}"
        raise SaettaError(msg) from exc


@contextlib.contextmanager
def _numpy_minuit() -> Iterator[Any]:
    """pyhf with the numpy backend and a silent iminuit optimizer; then as before."""
    pyhf = _pyhf()
    tensorlib, optimizer = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
    try:
        yield pyhf
    finally:
        pyhf.set_backend(tensorlib, optimizer)


def _model(workspace: Any) -> Any:
    """The pyhf model of a :class:`pyhf.Workspace`, every sample's yield clipped at 0.

    pyhf's interpolation (code4p, linear beyond one standard deviation) can make a yield
    negative; a negative mean in a bin with no observed event makes the likelihood grow
    without bound. pyhf's warning that it clips is not shown: it always does here.
    """
    log = logging.getLogger("pyhf.pdf")
    level = log.level
    log.setLevel(max(logging.ERROR, level))
    try:
        return workspace.model(clip_sample_data=_CLIP_SAMPLE_DATA)
    finally:
        log.setLevel(level)


def build_workspace(
    fit_input: FitInput,
    *,
    data: str | Mapping[str, np.ndarray] = "auto",
    inject: float = 1.0,
) -> dict[str, Any]:
    """The pyhf workspace of the AGC ttbar model (see the module docstring).

    Parameters
    ----------
    fit_input
        The histograms, as :func:`read_fit_input` reads them.
    data
        ``"auto"``: the data sample if there is one, else Asimov; ``"asimov"``: the model's
        expected yields at ``mu`` = ``inject`` with every nuisance parameter nominal; or a
        mapping of each region to its observed counts.
    inject
        The signal strength of Asimov pseudo-data; only with Asimov data.

    Returns
    -------
    dict
        The workspace specification (JSON-ready), validated against pyhf's schema.

    Raises
    ------
    SaettaError
        A histogram the model needs is missing, no signal sample has events, the data are
        malformed (wrong regions, bins, negative or not finite), ``inject`` is outside
        [0, 10] or given with real data.
    """
    regions = list(fit_input.edges)
    channels = [_channel(fit_input, region) for region in regions]
    if not any(m["name"] == POI for c in channels for s in c["samples"] for m in s["modifiers"]):
        msg = "no signal sample (role 'signal') has events; mu cannot be measured"
        raise SaettaError(msg)
    if not _POI_BOUNDS[0] <= inject <= _POI_BOUNDS[1]:
        msg = f"cannot inject mu={inject:g}: mu lies within {list(_POI_BOUNDS)}"
        raise SaettaError(msg)
    kind, counts = _observed(fit_input, data, inject)

    def spec(observed: Mapping[str, Any], kind: str) -> dict[str, Any]:
        config = {
            "poi": POI,
            "parameters": [{"name": POI, "inits": [1.0], "bounds": [list(_POI_BOUNDS)]}],
        }
        return {
            "channels": channels,
            "observations": [{"name": r, "data": list(map(float, observed[r]))} for r in regions],
            "measurements": [{"name": f"{_MEASUREMENT}: {kind}", "config": config}],
            "version": "1.0.0",
        }

    if counts is None:  # Asimov: the model's own expectation
        nominal = {c["name"]: np.sum([s["data"] for s in c["samples"]], axis=0) for c in channels}
        with _numpy_minuit() as pyhf:
            # the final spec is validated below: no need to validate twice
            model = _model(pyhf.Workspace(spec(nominal, kind), validate=False))
            pars = pyhf.tensorlib.astensor(model.config.suggested_init())
            pars[model.config.poi_index] = inject
            expected = np.asarray(model.expected_actualdata(pars))
        counts = {r: expected[model.config.channel_slices[r]] for r in regions}
    result = spec(counts, kind)
    _workspace(result)
    return result


def _observed(
    fit_input: FitInput, data: str | Mapping[str, np.ndarray], inject: float
) -> tuple[str, dict[str, np.ndarray] | None]:
    """The kind of data and its counts per region (None: Asimov)."""
    regions = list(fit_input.edges)
    real = [i.name for i in fit_input.samples.values() if i.role == "data"]
    if isinstance(data, str):
        if data not in {"auto", "asimov"}:
            msg = f"unknown data {data!r}; give 'auto', 'asimov' or counts per region"
            raise SaettaError(msg)
        if data == "asimov" or not real:
            return f"asimov (mu={inject:g})", None
        kind = "data"
        counts = {r: np.sum([fit_input.values(n, r) for n in real], axis=0) for r in regions}
    else:
        kind = "observed counts"
        if set(data) != set(regions):
            msg = f"data for regions {sorted(data)}; the model has {regions}"
            raise SaettaError(msg)
        try:
            counts = {r: np.asarray(data[r], dtype=np.float64) for r in regions}
        except (TypeError, ValueError) as exc:
            msg = f"observed counts are not numbers: {exc}"
            raise SaettaError(msg) from exc
    if inject != 1.0:
        msg = f"inject={inject:g} applies to Asimov data only, not to {kind}"
        raise SaettaError(msg)
    for region, values in counts.items():
        if values.shape != (len(fit_input.edges[region]) - 1,) or not (
            np.all(np.isfinite(values)) and np.all(values >= 0)
        ):
            msg = f"{kind} of region {region!r}: not {len(fit_input.edges[region]) - 1} counts >= 0"
            raise SaettaError(msg)
    return kind, counts
