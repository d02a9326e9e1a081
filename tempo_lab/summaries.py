"""The summaries every phenomenon shares, one home each: pure functions of tensors and finished results.

Nothing here runs the model. A phenomenon's tables, views, study measurements and claims call these, so one
number is computed one way everywhere.

Contents:

- :func:`divergences`, :func:`tv`, :func:`entropy`: total variation and KL against a reference
  distribution; total variation of one pair as a float; entropy.
- :func:`set_spans`, :func:`later_mass`, :func:`parallel_later_mass`: the slots of each parallel set of a
  TEMPO result, and how much later tokens attend to them.
- :func:`first_difference`: the first step whose sets differ between two TEMPO results.
- :func:`mean_or_nan`, :func:`repetition`: a mean that is NaN for nothing, and a path's repeated tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch


def divergences(probs: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total variation and ``KL(probs || reference)`` of each row of ``probs`` ``(P, vocab)`` from
    ``reference`` ``(vocab,)``; both ``(P,)``. Zero-probability terms of ``probs`` contribute 0 to the KL;
    rounding below 0 is clipped to 0."""
    tv_ = 0.5 * (probs - reference).abs().sum(-1)
    ratio = probs.clamp_min(1e-30).log() - reference.clamp_min(1e-30).log()
    kl = torch.where(probs > 0, probs * ratio, torch.zeros_like(probs)).sum(-1).clamp_min(0.0)
    return tv_, kl


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    """Total variation ``0.5 * sum |p - q|`` of two distributions ``(vocab,)``, as a float."""
    return float(divergences(p[None], q)[0][0])


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``probs`` ``(..., vocab)``; returns ``(...)``."""
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


def set_spans(result: Any) -> list[tuple[int, int, int]]:
    """``(set index, first slot, last slot + 1)`` of every fed parallel set of a ParallelResult."""
    return [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(result.steps) if s.fed]


def later_mass(result: Any, attention: torch.Tensor) -> pd.DataFrame:
    """Attention of later tokens on each earlier parallel set.

    ``attention``: ``(N, N)`` map of ``result`` (e.g. ``result.attention_map()``). For set ``k`` with slots
    ``a..b-1``, ``mass`` is the summed attention on those slots, averaged over every later query slot
    (``b..N-1``); sets with no later slot are left out. Columns: ``step``, ``tokens``, ``position``,
    ``later_queries``, ``mass``.
    """
    n = attention.shape[0]
    rows = []
    for k, a, b in set_spans(result):
        if b >= n:
            continue
        step = result.steps[k]
        rows.append(
            {
                "step": k,
                "tokens": "/".join(step.tokens),
                "position": step.position,
                "later_queries": n - b,
                "mass": float(attention[b:, a:b].sum(-1).mean()),
            }
        )
    return pd.DataFrame(rows, columns=["step", "tokens", "position", "later_queries", "mass"])


def parallel_later_mass(result: Any, attention: torch.Tensor) -> float:
    """Later queries' mean attention on the parallel sets (2+ members) of a TEMPO result, from its ``(N, N)``
    attention map; NaN when no parallel set has a later query."""
    table = later_mass(result, attention)
    parallel = table["mass"][[result.steps[k].size >= 2 for k in table["step"]]]
    return float(parallel.mean()) if len(parallel) else float("nan")


def first_difference(a: Any, b: Any, *, ordered: bool = True) -> int:
    """The first step whose sets differ between two TEMPO results (``-1`` when every step is the same; a run
    that stops early differs from the step it lacks). ``ordered=False`` compares the members as sets (the
    same tokens in another order count as the same set)."""
    sets = [[s.token_ids if ordered else sorted(s.token_ids) for s in r.steps] for r in (a, b)]
    differ = next((k for k, (x, y) in enumerate(zip(*sets, strict=False)) if x != y), -1)
    if differ == -1 and len(sets[0]) != len(sets[1]):
        differ = min(len(sets[0]), len(sets[1]))
    return differ


def mean_or_nan(values: Sequence[float]) -> float:
    """Mean, or NaN for nothing (a run that fed no set: its first set held the end-of-sequence token)."""
    return sum(values) / len(values) if values else float("nan")


def repetition(ids: Sequence[int]) -> float:
    """Share of a path's tokens that repeat an earlier token of the same path (0 = no repetition)."""
    return 1 - len(set(ids)) / len(ids) if ids else 0.0
