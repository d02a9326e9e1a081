"""Retroactive exploration's tables and the edits its live explorer applies: what the heatmap and the
explorer draw from a :class:`~tempo_lab.generators.RetroactiveResult` (driver:
:meth:`RetroactivePositionGenerator.explore <tempo_lab.generators.RetroactivePositionGenerator.explore>`).

Contents: :class:`HeatTable`, :func:`heat_table`, :func:`top1_changes` (notebook 03's table),
:func:`band_choices` and :func:`_seen_by` (the layers and rotary bands that see a move), :data:`NAME`,
:data:`TITLE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from tempo_lab.generators import RetroactiveResult
from tempo_lab.interventions import PositionEdit, rotary_of
from tempo_lab.labels import plain_number, token_labels
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks

NAME, TITLE = "retroactive", "Retroactive"


@dataclass
class HeatTable:
    """Probability of the tokens that matter over the explored gaps: ``table`` has one row per token
    (``repr`` label, ordered by highest probability) and one column per gap; ``token_ids``: one per row;
    ``top1`` / ``top1_ids``: the top token's text / id at each gap; ``prompt`` and ``token`` (the placed
    one)."""

    table: pd.DataFrame
    token_ids: list[int]
    top1: list[str]
    top1_ids: list[int]
    prompt: str
    token: str


def heat_table(lm: LoadedModel, result: RetroactiveResult, k: int = 5) -> HeatTable:
    """The ``k`` most probable tokens at the first gap, plus every token that is the top prediction at some
    gap, over every explored gap of ``result``."""
    k = checks.count("k", k)
    probs = result.probs.double().cpu()  # (P, vocab)
    ids = list(dict.fromkeys([*probs[0].topk(k).indices.tolist(), *probs.argmax(-1).tolist()]))
    sub = probs[:, ids].T.numpy()  # (tokens, P)
    order = np.argsort(-sub.max(axis=1), kind="stable")
    ordered = [ids[i] for i in order]
    table = pd.DataFrame(
        sub[order],
        index=pd.Index(token_labels(lm, ordered), name="token"),
        columns=pd.Index([plain_number(g) for g in result.gaps], name="gap"),
    )
    top = [int(i) for i in probs.argmax(-1)]
    return HeatTable(table, ordered, [lm.token_str(i) for i in top], top, result.prompt, result.token)


def top1_changes(heat: HeatTable) -> list[tuple[int | float, str]]:
    """``(gap, token text)`` wherever the top prediction differs from the one at the previous gap (first gap
    included)."""
    out, prev = [], None
    for gap, tok in zip(heat.table.columns, heat.top1, strict=True):
        if tok != prev:
            out.append((gap, tok))
            prev = tok
    return out


def band_choices(lm: LoadedModel) -> list[str]:
    """The live explorer's band options: ``"all"`` and the rotary bands in quarters (``"0-7"``: the highest
    frequencies)."""
    n = rotary_of(lm).n_bands()
    size = max(1, n // 4)
    return ["all", *(f"{b}-{min(b + size, n) - 1}" for b in range(0, n, size))]


def _seen_by(
    lm: LoadedModel, t: int, gaps: list[float], layers: tuple[int, int], bands: str
) -> list[PositionEdit]:
    """Edits that move the token (slot ``t``, one batch row per gap) back to gap 0 for every unit outside
    ``layers`` (inclusive) and ``bands``: only those units see the move."""
    lo, hi = layers
    n_layers = lm.model.config.num_hidden_layers
    if not 0 <= lo <= hi < n_layers:
        raise ValueError(f"the layer range {lo}-{hi} is not within 0-{n_layers - 1} (from <= to)")
    shift = torch.zeros(len(gaps), t + 1)
    shift[:, t] = -torch.tensor(gaps, dtype=torch.float32)
    inside = list(range(lo, hi + 1))
    edits = []
    outside = [layer for layer in range(n_layers) if layer not in inside]
    if outside:
        edits.append(PositionEdit(shift, layers=outside))
    if bands != "all":
        first, last = (int(b) for b in bands.split("-"))
        others = [b for b in range(rotary_of(lm).n_bands()) if not first <= b <= last]
        edits.append(PositionEdit(shift, layers=inside, bands=others))
    return edits
