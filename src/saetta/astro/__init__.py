"""Stage: astro (layer 7) — astroparticle and gravitational-wave data for the same engine.

- :mod:`saetta.astro.gamma_sim`: gamma-ray observations (GADF DL3 event lists) of a
  point source over an isotropic background, through a documented simple instrument;
- :mod:`saetta.astro.dl3`: the observations of a DL3 index (``obs-index``, ``hdu-index``);
- :mod:`saetta.astro.psd`: noise power spectral densities, and their Welch estimate;
- :mod:`saetta.astro.waveforms`: inspiral chirps (TaylorF2) and template banks;
- :mod:`saetta.astro.strain_sim`: strain files in the GWOSC layout, coloured noise with
  injected chirps.

The analyses over these data are :mod:`saetta.analyses.gamma` and
:mod:`saetta.analyses.gw`; the formats :mod:`saetta.formats.fits` and
:mod:`saetta.formats.strain`.
"""
