"""Fractional positions' tables, from a :class:`~tempo_lab.generators.PositionSweep` (driver:
:meth:`RetroactivePositionGenerator.sweep <tempo_lab.generators.RetroactivePositionGenerator.sweep>`).

Contents: :func:`neighbour_divergence`, :func:`top_token_curves`, :func:`compare_positions`, :data:`NAME`,
:data:`TITLE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from tempo_lab.generators import PositionSweep
from tempo_lab.summaries import divergences

NAME, TITLE = "fractional", "Fractional"


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


def top_token_curves(sweep: PositionSweep, k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, at every swept position.

    One row per position (index ``position``), one column per token (its text, ``repr``-quoted).
    """
    ids = sweep.top_ids(k)
    table = pd.DataFrame(
        sweep.probs[:, ids].double().numpy(),
        index=pd.Index(sweep.positions, name="position"),
        columns=[repr(sweep.token_text[i]) for i in ids],
    )
    table.columns.name = "token"
    return table


def compare_positions(sweep: PositionSweep, positions: Sequence[float], k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, with the last token at each of
    ``positions`` (swept ones): one row per token (``repr`` text), one column per position, plus a final row
    ``max |diff| vs natural`` (the largest change of any single token's probability, over the whole
    vocabulary).
    """
    ids = sweep.top_ids(k)
    nat = sweep.probs[sweep.index(sweep.natural)].double()
    cols = {}
    for p in positions:
        row = sweep.probs[sweep.index(p)].double()
        cols[f"{p:g}"] = [float(row[i]) for i in ids] + [float((row - nat).abs().max())]
    table = pd.DataFrame(cols, index=[repr(sweep.token_text[i]) for i in ids] + ["max |diff| vs natural"])
    table.columns.name = "position"
    return table
