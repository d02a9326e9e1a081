"""Measurements on results: divergences between distributions, attention on parallel sets, path agreement.

Every function here is pure: it reads tensors or result objects computed earlier and never runs the model.

Contents:

- :func:`divergences`, :func:`entropy`: total variation and KL against a reference distribution; entropy.
- :func:`neighbour_divergence`: a fractional position against its integer neighbours (a position sweep).
- :func:`top1_changes`: where the top prediction changes along the gaps of a retroactive heat table.
- :func:`set_spans`, :func:`later_mass`: the slots of each parallel set, and how much later tokens attend
  to them.
- :func:`path_agreement`: how compressed-thought paths at each gap agree with those at a reference gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch


def divergences(probs: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total variation and ``KL(probs || reference)`` of each row of ``probs`` ``(P, vocab)`` from
    ``reference`` ``(vocab,)``; both ``(P,)``. Zero-probability terms of ``probs`` contribute 0 to the KL;
    rounding below 0 is clipped to 0."""
    tv = 0.5 * (probs - reference).abs().sum(-1)
    ratio = probs.clamp_min(1e-30).log() - reference.clamp_min(1e-30).log()
    kl = torch.where(probs > 0, probs * ratio, torch.zeros_like(probs)).sum(-1).clamp_min(0.0)
    return tv, kl


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``probs`` ``(..., vocab)``; returns ``(...)``."""
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


def neighbour_divergence(sweep) -> pd.DataFrame:
    """Per swept position of a :class:`~tempo_lab.generators.retroactive.PositionSweep`: total variation and
    ``KL(p || p_neighbour)`` to the integer positions below and above, to the natural position, and the top
    token there.

    Columns: ``position``, ``floor``, ``ceil``, ``tv_floor``, ``tv_ceil``, ``kl_floor``, ``kl_ceil``,
    ``tv_natural``, ``max_abs_diff`` (largest single-token probability change against the natural position),
    ``top1``, ``p1``. At an integer position ``floor == ceil`` and both divergences are 0.
    """
    probs = sweep.probs.double()
    nat = probs[sweep.index(sweep.natural)]
    rows = []
    for i, p in enumerate(sweep.positions):
        lo, hi = float(math.floor(p)), float(math.ceil(p))
        tv_lo, kl_lo = divergences(probs[i : i + 1], probs[sweep.index(lo)])
        tv_hi, kl_hi = divergences(probs[i : i + 1], probs[sweep.index(hi)])
        tv_nat, _ = divergences(probs[i : i + 1], nat)
        top_p, top_i = probs[i].max(-1)
        rows.append(
            {
                "position": p,
                "floor": lo,
                "ceil": hi,
                "tv_floor": float(tv_lo[0]),
                "tv_ceil": float(tv_hi[0]),
                "kl_floor": float(kl_lo[0]),
                "kl_ceil": float(kl_hi[0]),
                "tv_natural": float(tv_nat[0]),
                "max_abs_diff": float((probs[i] - nat).abs().max()),
                "top1": repr(sweep.token_text[int(top_i)]),
                "p1": float(top_p),
            }
        )
    return pd.DataFrame(rows)


def top1_changes(table: pd.DataFrame) -> list[tuple[int | float, str]]:
    """``(gap, token text)`` wherever the top prediction differs from the one at the previous gap (first gap
    included) in a :func:`tempo_lab.tables.retro_heat_table`."""
    out, prev = [], None
    for gap, tok in zip(table.columns, table.attrs["top1"], strict=True):
        if tok != prev:
            out.append((gap, tok))
            prev = tok
    return out


def set_spans(result) -> list[tuple[int, int, int]]:
    """``(set index, first slot, last slot + 1)`` of every fed parallel set of a ParallelResult."""
    return [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(result.steps) if s.fed]


def later_mass(result, attention: torch.Tensor) -> pd.DataFrame:
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


def path_agreement(runs: Mapping[Any, Any], reference_gap: Any | None = None) -> pd.DataFrame:
    """How each candidate's path at each gap agrees with its path at ``reference_gap`` (default: the first
    gap): the fraction of path slots holding the same token, and the first slot where they differ (``None``
    when identical). ``runs``: gap → CompressedResult. One row per candidate, one column pair per gap."""
    gaps = list(runs)
    ref = runs[gaps[0] if reference_gap is None else reference_gap]
    rows = []
    for k, base in enumerate(ref.paths):
        row: dict[str, Any] = {"candidate": repr(base.candidate.token)}
        for gap in gaps:
            other = runs[gap].paths[k]
            if other.candidate.token_id != base.candidate.token_id:
                raise ValueError(f"gap {gap} has different candidates than the reference gap")
            n = max(len(base.token_ids), len(other.token_ids))
            same = [
                i < len(base.token_ids)
                and i < len(other.token_ids)
                and base.token_ids[i] == other.token_ids[i]
                for i in range(n)
            ]
            row[f"same@{gap:g}"] = sum(same) / n
            row[f"differs from@{gap:g}"] = next((i for i, s in enumerate(same) if not s), None)
        rows.append(row)
    table = pd.DataFrame(rows)
    for gap in gaps:
        table[f"differs from@{gap:g}"] = table[f"differs from@{gap:g}"].astype("Int64")
    return table
