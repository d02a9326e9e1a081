"""The half step over a prompt set: the batched measurement, its single-prompt twin and the claim.

Contents: :func:`measure`, :func:`single_rows`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, ci, fmt_ci
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.phenomena.batching import placed
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.phenomena.fractional.probe import NAME
from tempo_lab.summaries import tv


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt: its last token at ``T - 1.5`` (between its integer neighbours ``T - 2`` and ``T - 1``).
    ``tv_low`` / ``tv_high``: total variation of the next-token distribution against each neighbour's;
    ``tv_neighbours``: between the neighbours; ``between``: both TVs at most ``tv_neighbours``."""
    prefixes = [ids[:, :-1] for _, ids in batch]

    def make(b: int, _: torch.Tensor) -> tuple[list, list]:
        t = batch[b][1].shape[1]
        return [int(batch[b][1][0, -1])] * 3, [t - 2.0, t - 1.5, t - 1.0]

    rows = []
    for (i, _), p in zip(batch, placed(lm, prefixes, make), strict=True):
        low, mid, high = p
        tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
        rows.append({
            "prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
            "between": bool(tv_low <= tv_n and tv_high <= tv_n),
            "top1_changed": bool(mid.argmax() != high.argmax()),
        })  # fmt: skip
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The row of :func:`measure` for prompt ``i`` alone, through the retroactive generator."""
    retro = RetroactivePositionGenerator(lm)
    t = ids.shape[1]
    placed = retro.place(retro.core.prefill(ids[:, :-1]), int(ids[0, -1]), [t - 2.0, t - 1.5, t - 1.0])
    low, mid, high = torch.softmax(widened(placed), -1)
    tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
    return [{"prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
             "between": tv_low <= tv_n and tv_high <= tv_n,
             "top1_changed": bool(mid.argmax() != high.argmax())}]  # fmt: skip


WHOLE_STEP_SHARE = (0.1, 0.25)  # (negligible below, meaningful above): the half step's TV over a whole step's


def _ratio(frac: pd.DataFrame) -> tuple[float, float, float]:
    """The half step's TV over the whole step's (ratio of means), resampled by prompt kind."""
    return stats.cluster_bootstrap_ci(
        frac.tv_high / frac.tv_neighbours, frac.kind, weights=frac.tv_neighbours
    )


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    frac = study.table(NAME)
    frac = frac[frac.tv_neighbours > 0]
    ratio, changed, between = _ratio(frac), ci(frac.top1_changed), ci(frac.between)
    return Evidence(
        {"ratio_lo": ratio[1], "ratio_hi": ratio[2]},
        f"TV {single['02']['tv_half_step_forward']:.4f} against the natural position",
        f"TV of the half step {fmt_ci(*ci(frac.tv_high), 4)}, {fmt_ci(*ratio)} of a whole step's (resampled "
        f"by prompt kind); top-1 changes in {fmt_ci(*changed)}; between its neighbours in {fmt_ci(*between)}",
    )


def _decide(v: Mapping[str, float]) -> str:
    if above(v["ratio_lo"], WHOLE_STEP_SHARE[1]):
        return "confirmed"
    return "refuted" if below(v["ratio_hi"], WHOLE_STEP_SHARE[0]) else "undecided"


CLAIMS = (
    Claim("02.half_step", NAME, "a fractional position (k+0.5) shifts the next-token distribution",
          "notebook 02, one prompt", "max probability change 0.0263",
          ("study:fractional.tv_high", "study:fractional.tv_neighbours", "notebook:02.tv_half_step_forward"),
          _claim,
          Rule("TV of the next-token distribution at k+0.5 against k+1, over the TV of a whole step (k "
               "against k+1) from the same place: the ratio of the means", "prompt kind",
               {"negligible": WHOLE_STEP_SHARE[0], "meaningful": WHOLE_STEP_SHARE[1]},
               f"confirmed if lo95(ratio) > {WHOLE_STEP_SHARE[1]} (a half step moves the distribution by at "
               f"least a quarter of what a whole step does); refuted if hi95(ratio) < "
               f"{WHOLE_STEP_SHARE[0]}; else undecided",
               _decide,
               (({"ratio_lo": 0.4, "ratio_hi": 0.6}, "confirmed"),
                ({"ratio_lo": 0.0, "ratio_hi": 0.05}, "refuted"),
                ({"ratio_lo": 0.05, "ratio_hi": 0.4}, "undecided")),
               written="with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"),
          headline=("TV at k+0.5 against the natural position",
                    lambda s: s.table(NAME).set_index("prompt").tv_high)),
)  # fmt: skip
