"""Where position acts (notebook 09): the seed phenomena localised to layers, heads and rotary bands.

- :mod:`.probe`: :func:`localise` (:class:`Localisation`) over a layout pair, the pairs of notebooks 02, 03
  and 04, and :func:`collapse_bands` (:class:`BandCollapse`): the previous-token heads and the rotary bands
  that build them;
- :mod:`.display`: its figures, the render its replay sliders use and the study's figure (loaded on first
  use);
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
from tempo_lab.phenomena.localisation.study import NAME, measure, single_rows
from tempo_lab.phenomena.localisation.summary import CLAIMS, curve, localisation_sentence, shares
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = (
    "bands_figure",
    "collapse_figure",
    "figure",
    "gradient_figure",
    "heads_figure",
    "recovery_figure",
    "render",
    "view",
)
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME, "09", "Where position acts", measure=measure, single=single_rows, claims=CLAIMS, default_study=False
)

__all__ = [
    "CLAIMS",
    "ENTRY",
    "NAME",
    "PHENOMENON",
    "PREVIOUS_TOKEN_RULE",
    "BandCollapse",
    "Localisation",
    "band_groups",
    "collapse_bands",
    "curve",
    "entry_layers",
    "half_step_pair",
    "localisation_sentence",
    "localise",
    "measure",
    "previous_token_scores",
    "retro_pair",
    "set_pair",
    "shares",
    "single_rows",
    *DISPLAY,
]
