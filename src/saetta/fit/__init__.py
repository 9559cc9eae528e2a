"""Stage: fit (layer 8) — statistical inference for the AGC ttbar analysis: a HistFactory
model (pyhf), its maximum-likelihood fit (iminuit), pulls and pre- and post-fit plots.

The model is the AGC's ``cabinetry_config.yml``, built in code as a pyhf workspace:

- one channel per region of the input (``4j1b``: H_T, ``4j2b``: m_bjj), its bins the
  in-range bins of the histograms;
- one sample per nominal Monte Carlo sample (role ``signal`` or ``background``, no
  ``variation_of``); a sample with no events in a channel is left out of that channel;
- ``mu``, a normfactor on every signal sample (ttbar): the parameter of interest,
  starting at 1 within [0, 10];
- ``Luminosity``, a normsys 0.97 / 1.03 on every sample;
- ``staterror_<region>``, the Monte Carlo statistical uncertainty per bin (the square root
  of the summed squared weights of every sample with a yield in that bin), its relative
  size capped at 100 % (see *Low statistics*);
- histosys modifiers (shape and normalisation together; pyhf's interpolation ``code4p``)
  from each sample's variations:

  ========================  ==========================  ======================
  modifier                  up                          down
  ========================  ==========================  ======================
  Jet energy scale          ``pt_scale_up``             symmetrised
  Jet energy resolution     ``pt_res_up``               symmetrised
  b-tag NP 1 .. 4           ``btag_var_0_up`` .. 3      ``btag_var_0_down`` .. 3
  W+jets scale variations   ``scale_var_up`` (wjets)    ``scale_var_down``
  ========================  ==========================  ======================

  and from the alternative samples of a nominal sample (``variation_of`` its name, found
  by that, not by name patterns): ``ME variation`` (variation ``ME_var``, symmetrised),
  ``PS variation`` (``PS_var``, symmetrised) and ``<sample> scale variations``
  (``scaleup`` up, ``scaledown`` down), for ttbar ``ttbar scale variations``.

Symmetrised means down = 2 * nominal - up. Every template (nominal, up, down) is clipped
at 0 bin by bin, so a negative symmetrised bin (or a negative sum of weights) becomes 0:
a Poisson mean cannot be negative. Where a sample's nominal is 0, its up and down are set
to 0 as well (see *Low statistics*). A histosys whose up and down both equal the nominal
is dropped.

The data: the data sample (several are summed), Asimov pseudo-data (the model's expected
yields at ``mu`` = ``inject``, every nuisance parameter nominal; not integers, which
pyhf's Poisson takes), or given counts. The workspace's measurement is named
``"AGC ttbar: <data kind>"``, so :func:`fit` of a saved ``workspace.json`` still knows
what it fits.

Unlike cabinetry, which splits each variation into a normsys and a shape-only histosys,
one histosys carries both here. The fit is pyhf's (numpy backend, iminuit, Hesse
errors, MINOS for μ); the plots are cabinetry's, their matplotlib style and INFO logging kept to the call.

*Low statistics.* With few simulated events of large weight (400 per sample: up to ~6000
each) many bins hold one event or none, and the templates are mostly fluctuations. pyhf's
histosys interpolation (``code4p``: a polynomial within one standard deviation, linear
beyond) is not positive definite: a one-sided template undershoots, the extrapolation
and several modifiers together go below 0. A negative mean in a bin with no observed event
(an empty bin of Asimov data or of data) makes the Poisson log-likelihood, -mean there,
grow without bound: such a fit ran to ``mu`` = 10 with -2 ln L = -4e4. Therefore:

- every model :func:`fit`, the Asimov data and the plots build from a workspace clips
  each sample's expected yield per bin at 0, as HistFactory's interpolation is positive
  definite in ROOT (pyhf's ``clip_sample_data=0.0``; a model option, no field of
  ``workspace.json``: give it to pyhf when fitting that file elsewhere). Every yield is
  >= 0, so the Asimov point is the likelihood's global maximum: the fit gives ``inject``;
- a template bin where the nominal has no event is 0: a variation that moves one event
  of weight 6000 into an empty bin (an alternative sample, a jet energy shift) would put
  the fit's minimum on a kink (the yield clipped at 0 on one side of the nominal, a
  slope of thousands of events against 0 observed on the other): an invalid minimum,
  absurd constraints;
- a sample with no yield in a bin (none, or a negative sum of weights clipped to 0) adds
  no staterror there (its variance would inflate the other samples'); a bin without
  Monte Carlo uncertainty has its parameter fixed at 1 (pyhf). The relative uncertainty
  of a bin is capped at 100 % (one event: 100 %; more, from weights of both signs, would
  be a Gaussian reaching below 0 within one standard deviation): every sample's
  uncertainty there is scaled down to it.

- :mod:`~saetta.fit.inputs`: :class:`SampleInfo` and :class:`FitInput`, the histograms
  of the analysis.
- :mod:`~saetta.fit.read`: :func:`read_fit_input`, from saetta's ``.root`` or ``.json``
  output.
- :mod:`~saetta.fit.variations`: which variations and alternative samples give which
  modifier.
- :mod:`~saetta.fit.model`: :func:`build_workspace`, the pyhf workspace and its modifiers.
- :mod:`~saetta.fit.minimize`: :func:`fit` and :class:`FitResult`.
- :mod:`~saetta.fit.plots`: :func:`plot_pulls` and :func:`plot_prefit_postfit`.
"""

from __future__ import annotations

from saetta.fit.inputs import NOMINAL, ROLES, SAMPLE_FIELDS, FitInput, SampleInfo
from saetta.fit.minimize import FitResult, fit
from saetta.fit.model import POI, build_workspace
from saetta.fit.plots import plot_prefit_postfit, plot_pulls
from saetta.fit.read import read_fit_input

__all__ = [
    "NOMINAL",
    "POI",
    "ROLES",
    "SAMPLE_FIELDS",
    "FitInput",
    "FitResult",
    "SampleInfo",
    "build_workspace",
    "fit",
    "plot_prefit_postfit",
    "plot_pulls",
    "read_fit_input",
]
