"""The gap dropout (notebook 01): how much a token placed after a position gap still attends to the prompt,
under four ways of passing the mask and cache.

- :mod:`.probe`: :func:`gap_probe` and its result :class:`GapProbe`, :func:`strategy_forward`,
  :func:`packed_split_evidence` (why the dropout happens);
- :mod:`.display`: its tables, figures, and the one render its replay view and live explorer share;
- :mod:`.study`: the batched measurement over a prompt set, its single-prompt twin, figure and claims.
"""

from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.phenomena.gap_dropout.display import (
    explorer,
    layer_mass_heatmaps,
    mass_table,
    prompt_mass_lines,
    render,
    top_token_table,
    view,
)
from tempo_lab.phenomena.gap_dropout.probe import (
    STRATEGIES,
    STRATEGY_DESCRIPTIONS,
    GapProbe,
    GapRow,
    gap_probe,
    packed_split_evidence,
    strategy_forward,
)
from tempo_lab.phenomena.gap_dropout.study import CLAIMS, figure, measure, single_rows

PHENOMENON = Phenomenon(
    "gap_dropout", "01", "Gap dropout", measure=measure, single=single_rows, explorer=explorer, claims=CLAIMS
)

__all__ = [
    "PHENOMENON",
    "STRATEGIES",
    "STRATEGY_DESCRIPTIONS",
    "GapProbe",
    "GapRow",
    "explorer",
    "figure",
    "gap_probe",
    "layer_mass_heatmaps",
    "mass_table",
    "measure",
    "packed_split_evidence",
    "prompt_mass_lines",
    "render",
    "single_rows",
    "strategy_forward",
    "top_token_table",
    "view",
]
