"""Retroactive pruning (notebook 07): TEMPO members that later tokens ignore are pruned by attention.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` with ``prune=Pruning(...)``.

- :mod:`.probe`: :func:`pruning_runs` (:class:`PruningPair`: mask-only beside the exact recompute, per
  pruning threshold), :func:`pruning_table`, :func:`pruning_drift`;
- :mod:`.display`: :func:`pruning_shares`, and :func:`render` / :func:`view`, notebook 07's replay (loaded
  on first use).
"""

from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes
from tempo_lab.phenomena.pruning.probe import (
    NAME,
    RUNS,
    TITLE,
    PruningPair,
    pruning_drift,
    pruning_runs,
    pruning_table,
)

DISPLAY = ("pruning_shares", "render", "view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(NAME, "07", TITLE)
__all__ = [
    "NAME",
    "PHENOMENON",
    "RUNS",
    "TITLE",
    "PruningPair",
    "pruning_drift",
    "pruning_runs",
    "pruning_table",
    *DISPLAY,
]
