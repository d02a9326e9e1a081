"""Isolated against visible parallel sets (notebook 04): TEMPO's two readings of "isolation" compared on the
same sets. The live explorer is TEMPO's (:func:`tempo_lab.phenomena.tempo_sets.explorer`, with a mode
toggle).

- :mod:`.probe`: the single-prompt pair of runs (:func:`parallel_pairs`, :class:`ModePair`) and its tables;
- :mod:`.display`: its figures, the replay view and the study's figure;
- :mod:`.study`: the measurement over a prompt set and its claims.
"""

from tempo_lab.phenomena.isolation.probe import (
    ModePair,
    mode_mass_table,
    mode_sets_table,
    mode_texts_table,
    parallel_pairs,
)

__all__ = [
    "ModePair",
    "mode_mass_table",
    "mode_sets_table",
    "mode_texts_table",
    "parallel_pairs",
]
