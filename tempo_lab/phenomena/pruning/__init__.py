"""Retroactive pruning (notebook 07): TEMPO members that later tokens ignore are pruned by attention.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` with ``prune=Pruning(...)``.

- :mod:`.probe`: :func:`pruning_runs` (:class:`PruningPair`: mask-only beside the exact recompute, per
  pruning threshold), :func:`pruning_table`, :func:`pruning_drift`;
- :mod:`.display`: :func:`pruning_shares`, and :func:`render` / :func:`view`, notebook 07's replay.
"""

from tempo_lab.phenomena.pruning.probe import (
    NAME,
    RUNS,
    TITLE,
    PruningPair,
    pruning_drift,
    pruning_runs,
    pruning_table,
)

__all__ = [
    "NAME",
    "PruningPair",
    "RUNS",
    "TITLE",
    "pruning_drift",
    "pruning_runs",
    "pruning_table",
]
