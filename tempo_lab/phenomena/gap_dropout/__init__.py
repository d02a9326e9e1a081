"""The gap dropout (notebook 01): how much a token placed after a position gap still attends to the prompt,
under four ways of passing the mask and cache.

- :mod:`.probe`: :func:`gap_probe` and its result :class:`GapProbe`, :func:`strategy_forward`,
  :func:`packed_split_evidence` (why the dropout happens);
- :mod:`.display`: its tables, figures, and the one render its replay view and live explorer share, and the
  study's figure;
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

__all__ = [
    "GapProbe",
    "GapRow",
    "STRATEGIES",
    "STRATEGY_DESCRIPTIONS",
    "gap_probe",
    "packed_split_evidence",
    "strategy_forward",
]
