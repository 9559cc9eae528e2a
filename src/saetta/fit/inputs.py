"""Stage: fit (layer 8) — the input of the fit: :class:`SampleInfo`, one sample of the
analysis and its role, and :class:`FitInput`, the histograms per (sample, region,
variation) with their bin edges, checked on construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from saetta.errors import SaettaError

NOMINAL = "nominal"
ROLES = ("signal", "background", "data")
#: The fields of each sample in the output document's ``metadata.samples``.
SAMPLE_FIELDS = ("role", "variation_of", "variation")


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """One sample of the analysis: a signal, a background, data, or a variation of one."""

    name: str
    role: str  # "signal" | "background" | "data"
    variation_of: str | None = None  # the nominal sample this one is an alternative of
    variation: str | None = None  # "ME_var", "PS_var", "scaleup", "scaledown"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            msg = f"sample {self.name!r} has role {self.role!r}; give one of {', '.join(ROLES)}"
            raise SaettaError(msg)
        if (self.variation_of is None) != (self.variation is None):
            msg = f"sample {self.name!r}: give both variation_of and variation, or neither"
            raise SaettaError(msg)

    @property
    def is_nominal_mc(self) -> bool:
        """Whether the sample is a sample of the model (Monte Carlo, not an alternative)."""
        return self.role != "data" and self.variation_of is None


@dataclass(frozen=True, eq=False)
class FitInput:
    """The histograms of the analysis, as :func:`build_workspace` takes them.

    ``histograms`` maps ``(sample, region, variation)`` to ``(values, variances)``,
    float64 arrays of the in-range bins (no flow bins), normalised to the luminosity;
    ``edges`` maps each region to its bin edges. Checked on construction.
    """

    samples: Mapping[str, SampleInfo]
    histograms: Mapping[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]
    edges: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        for region, edges in self.edges.items():
            if not (
                isinstance(edges, np.ndarray)
                and edges.ndim == 1
                and edges.size >= 2
                and np.all(np.isfinite(edges))
                and np.all(np.diff(edges) > 0)
            ):
                msg = f"region {region!r}: bin edges must be increasing finite numbers"
                raise SaettaError(msg)
        for key, pair in self.histograms.items():
            _check_histogram(key, pair, self.samples, self.edges)
        for name, info in self.samples.items():
            if not isinstance(info, SampleInfo) or info.name != name:
                msg = f"sample {name!r}: not a SampleInfo of that name"
                raise SaettaError(msg)
        for info in self.samples.values():
            parent = self.samples.get(info.variation_of or "")
            if info.variation_of is not None and (parent is None or not parent.is_nominal_mc):
                msg = (
                    f"sample {info.name!r} is a variation of {info.variation_of!r}, "
                    "which is no nominal Monte Carlo sample"
                )
                raise SaettaError(msg)

    def values(self, sample: str, region: str, variation: str = NOMINAL) -> np.ndarray:
        """The bin values of one histogram; a missing one raises :class:`SaettaError`."""
        try:
            return self.histograms[sample, region, variation][0]
        except KeyError:
            msg = f"no histogram {sample}/{region}/{variation} in the fit input"
            raise SaettaError(msg) from None


def _check_histogram(
    key: Any, pair: Any, samples: Mapping[str, SampleInfo], edges: Mapping[str, np.ndarray]
) -> None:
    name = "/".join(map(str, key)) if isinstance(key, tuple) else repr(key)
    if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(k, str) for k in key)):
        problem = "its key is not (sample, region, variation)"
    elif key[0] not in samples or key[1] not in edges:
        problem = "its sample or region is unknown"
    elif not (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in pair)
    ):
        problem = "it is not a pair (values, variances) of float64 arrays"
    elif not pair[0].shape == pair[1].shape == (len(edges[key[1]]) - 1,):
        problem = f"{pair[0].shape} bins where region {key[1]!r} has {len(edges[key[1]]) - 1}"
    elif not (np.all(np.isfinite(pair[0])) and np.all(np.isfinite(pair[1]))):
        problem = "it has NaN or infinite bins"
    elif np.any(pair[1] < 0):
        problem = "it has negative variances"
    else:
        return
    msg = f"histogram {name}: {problem}"
    raise SaettaError(msg)
