"""Where position acts (notebook 09): the seed phenomena localised to layers, heads and rotary bands.

- :mod:`.probe`: :func:`localise` (:class:`Localisation`) over a layout pair, the pairs of notebooks 02, 03
  and 04, and :func:`collapse_bands` (:class:`BandCollapse`): the previous-token heads and the rotary bands
  that build them;
- :mod:`.display`: its figures, the render its replay sliders use and the study's figure;
- :mod:`.study`: the batched measurement over a prompt set and its single-prompt twin;
- :mod:`.summary`: what the stored study says: curves, shares and the claims it decides.

The live side is the retroactive explorer's layer-range and band controls
(:func:`tempo_lab.phenomena.retroactive.explorer`).
"""

from tempo_lab.phenomena.localisation.probe import (
    ENTRY,
    PREVIOUS_TOKEN_RULE,
    BandCollapse,
    Localisation,
    band_groups,
    collapse_bands,
    entry_layers,
    half_step_pair,
    localise,
    previous_token_scores,
    retro_pair,
    set_pair,
)

__all__ = [
    "BandCollapse",
    "ENTRY",
    "Localisation",
    "PREVIOUS_TOKEN_RULE",
    "band_groups",
    "collapse_bands",
    "entry_layers",
    "half_step_pair",
    "localise",
    "previous_token_scores",
    "retro_pair",
    "set_pair",
]
