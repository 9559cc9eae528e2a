"""Stage: fit (layer 8) — the systematic variations of the AGC ttbar model: which
histogram variations of a nominal sample each histosys modifier reads (``_SYSTEMATICS``),
and which modifier and side each kind of alternative sample gives (``_ALTERNATIVES``);
what :func:`~saetta.fit.read.read_fit_input` requires and
:func:`~saetta.fit.model.build_workspace` builds from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Systematic:
    name: str
    up: str
    down: str | None  # None: symmetrise the up variation
    samples: tuple[str, ...] | None = None  # None: every nominal Monte Carlo sample


_SYSTEMATICS = (
    _Systematic("Jet energy scale", "pt_scale_up", None),
    _Systematic("Jet energy resolution", "pt_res_up", None),
    *(_Systematic(f"b-tag NP {i + 1}", f"btag_var_{i}_up", f"btag_var_{i}_down") for i in range(4)),
    _Systematic("W+jets scale variations", "scale_var_up", "scale_var_down", ("wjets",)),
)
#: Alternative samples: their ``variation`` -> (modifier name, the side they give).
_ALTERNATIVES = {
    "ME_var": ("ME variation", "up"),
    "PS_var": ("PS variation", "up"),
    "scaleup": ("{} scale variations", "up"),
    "scaledown": ("{} scale variations", "down"),
}
