"""The gap dropout (notebook 01): how much a token placed after a position gap still attends to the prompt,
under four ways of passing the mask and cache.

- :mod:`.probe`: :func:`gap_probe` and its result :class:`GapProbe`, :func:`strategy_forward`,
  :func:`packed_split_evidence` (why the dropout happens);
- :mod:`.display`: its tables, figures, and the one render its replay view and live explorer share, and the
  study's figure (loaded on first use);
- :mod:`.study`: the batched measurement over a prompt set, its single-prompt twin and claims.
"""

from tempo_lab.phenomena.gap_dropout.probe import (
    STRATEGIES,
    STRATEGY_DESCRIPTIONS,
    GapProbe,
    GapRow,
    gap_probe,
    packed_split_evidence,
    strategy_forward,
)
from tempo_lab.phenomena.gap_dropout.study import CLAIMS, NAME, measure, single_rows
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = (
    "explorer",
    "figure",
    "layer_mass_heatmaps",
    "mass_table",
    "prompt_mass_lines",
    "render",
    "top_token_table",
    "view",
)
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME,
    "01",
    "Gap dropout",
    measure=measure,
    single=single_rows,
    explorer=f"{__name__}.display",
    claims=CLAIMS,
)

__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "STRATEGIES",
    "STRATEGY_DESCRIPTIONS",
    "GapProbe",
    "GapRow",
    "gap_probe",
    "measure",
    "packed_split_evidence",
    "single_rows",
    "strategy_forward",
    *DISPLAY,
]
