"""Isolated against visible parallel sets (notebook 04): TEMPO's two readings of "isolation" compared on the
same sets. :mod:`.display` holds the single-prompt drivers, tables, figures and replay view; :mod:`.study`
the measurement over a prompt set and its claims. The live explorer is TEMPO's
(:func:`tempo_lab.phenomena.tempo_sets.explorer`, with a mode toggle)."""

from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.phenomena.isolation.display import (
    MODE_COLOR,
    ModePair,
    mode_maps,
    mode_mass_bars,
    mode_mass_table,
    mode_sets_table,
    mode_texts_table,
    parallel_pairs,
    view,
)
from tempo_lab.phenomena.isolation.study import CLAIMS, figure, measure, single_rows

PHENOMENON = Phenomenon("isolation", "04", "Isolated vs visible", measure=measure, single=single_rows,
                        claims=CLAIMS)  # fmt: skip

__all__ = [
    "MODE_COLOR",
    "PHENOMENON",
    "ModePair",
    "figure",
    "measure",
    "mode_maps",
    "mode_mass_bars",
    "mode_mass_table",
    "mode_sets_table",
    "mode_texts_table",
    "parallel_pairs",
    "single_rows",
    "view",
]
