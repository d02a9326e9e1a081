"""Isolated against visible parallel sets (notebook 04): TEMPO's two readings of "isolation" compared on the
same sets. The live explorer is TEMPO's (:func:`tempo_lab.phenomena.tempo_sets.explorer`, with a mode
toggle).

- :mod:`.probe`: the single-prompt pair of runs (:func:`parallel_pairs`, :class:`ModePair`) and its tables;
- :mod:`.display`: its figures, the replay view and the study's figure (loaded on first use);
- :mod:`.study`: the measurement over a prompt set and its claims.
"""

from tempo_lab.phenomena.isolation.probe import (
    ModePair,
    mode_mass_table,
    mode_sets_table,
    mode_texts_table,
    parallel_pairs,
)
from tempo_lab.phenomena.isolation.study import CLAIMS, NAME, measure, single_rows
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = ("MODE_COLOR", "figure", "mode_maps", "mode_mass_bars", "view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(NAME, "04", "Isolated vs visible", measure=measure, single=single_rows, claims=CLAIMS)

__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "ModePair",
    "measure",
    "mode_mass_table",
    "mode_sets_table",
    "mode_texts_table",
    "parallel_pairs",
    "single_rows",
    *DISPLAY,
]
