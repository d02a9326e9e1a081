"""Retroactive pruning's runs and tables: mask-only beside the exact recompute, per pruning threshold.

Contents: :func:`pruning_runs` (:class:`PruningPair`), :func:`pruning_table`, :func:`pruning_drift`,
:data:`RUNS`, :data:`NAME`, :data:`TITLE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd

from tempo_lab.generators import ParallelResult, ParallelTokenGenerator, Pruning
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks

NAME, TITLE = "pruning", "Pruning"


RUNS = ("mask-only", "recompute")


class PruningPair(NamedTuple):
    """One pruning threshold's runs: ``masked`` (pruned members' mask columns closed) and ``recompute`` (the
    cache rebuilt without them: the exact "as if never there" baseline)."""

    masked: ParallelResult
    recompute: ParallelResult

    def run(self, name: str) -> ParallelResult:
        """The run called ``name``: ``"mask-only"`` or ``"recompute"``."""
        return self.masked if checks.choice("run", name, RUNS) == "mask-only" else self.recompute


def pruning_runs(
    lm: LoadedModel, prompt: str, thresholds: Sequence[float], *, window: int = 2, **options: Any
) -> dict[float, PruningPair]:
    """TEMPO runs with retroactive pruning at each pruning threshold (see :class:`PruningPair`). ``options``
    go to :meth:`ParallelTokenGenerator.generate`."""
    gen = ParallelTokenGenerator(lm)
    out = {}
    for th in checks.as_list(thresholds):
        masked = gen.generate(prompt, prune=Pruning(th, window), progress=False, **options)
        rebuilt = gen.generate(prompt, prune=Pruning(th, window, recompute=True), progress=False, **options)
        out[float(th)] = PruningPair(masked, rebuilt)
    return out


def pruning_table(result: ParallelResult) -> pd.DataFrame:
    """Per parallel set of a pruned run: its members, each member's share of the next steps' attention, and
    which were pruned (``<NA>``-free: sets never decided show empty shares)."""
    rows = []
    for k, s in enumerate(result.steps):
        if s.size < 2:
            continue
        shares = s.attention_scores or []
        rows.append({
            "step": k,
            "position": s.position,
            "members": "/".join(repr(t) for t in s.tokens),
            "attention shares": " / ".join(f"{x:.4f}" for x in shares),
            "pruned": "/".join(repr(t) for t, cut in zip(s.tokens, s.pruned or [], strict=False) if cut),
            "decided at step": s.pruned_at,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["decided at step"] = table["decided at step"].astype("Int64")
    return table


def pruning_drift(runs: Mapping[float, PruningPair]) -> pd.DataFrame:
    """Per pruning threshold: members pruned, and how the mask-only run's continuation drifts from the exact
    recompute (same sets, the first step where they differ, and both texts without the pruned members)."""
    rows = []
    for th, (masked, rebuilt) in runs.items():
        a, b = [s.token_ids for s in masked.steps], [s.token_ids for s in rebuilt.steps]
        same = [x == y for x, y in zip(a, b, strict=False)]
        rows.append({
            "prune threshold": th,
            "members pruned": sum(sum(s.pruned) for s in masked.steps if s.pruned),
            "same sets": sum(same) / max(len(a), len(b)),
            "first differing step": next((k for k, s in enumerate(same) if not s), None),
            "mask-only": masked.pruned_text,
            "recompute": rebuilt.pruned_text,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table
