"""Retroactive exploration over a prompt set: the batched measurement, its single-prompt twin and the claim.

Contents: :func:`measure`, :func:`single_rows`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, ci, fmt_ci, nearest
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.batching import placed
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.phenomena.retroactive.probe import NAME
from tempo_lab.summaries import tv


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x gap: the prompt's greedy next token re-placed at ``T + gap``; TV of the distribution
    after it against gap 0, and whether its top token stays the same
    (:meth:`~tempo_lab.generators.RetroactivePositionGenerator.place`)."""
    gaps = list(cond.retro_gaps)

    def make(b: int, next_logits: torch.Tensor) -> tuple[list, list]:
        t = batch[b][1].shape[1]
        return [int(next_logits.argmax())] * len(gaps), [float(t + g) for g in gaps]

    rows = []
    for (i, _), p in zip(batch, placed(lm, [ids for _, ids in batch], make), strict=True):
        for k, g in enumerate(gaps):
            rows.append({
                "prompt": i, "gap": float(g), "tv": tv(p[k], p[0]), "p1": float(p[k].max()),
                "top1_same": bool(p[k].argmax() == p[0].argmax()),
            })  # fmt: skip
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` alone, through the retroactive generator."""
    res = RetroactivePositionGenerator(lm).explore(ids, gaps=cond.retro_gaps)
    probs = res.probs
    return [{"prompt": i, "gap": float(g), "tv": tv(p, probs[0]), "p1": float(p.max()),
             "top1_same": bool(p.argmax() == probs[0].argmax())}
            for g, p in zip(cond.retro_gaps, probs, strict=True)]  # fmt: skip


CHANGES = 0.1  # a re-placement "changes what follows" when it moves a tenth of the next-token distribution


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    retro = study.table(NAME)
    gaps = sorted(retro.gap.unique())
    near, far = gaps[1], gaps[-1]
    at_near = retro[retro.gap == near].set_index("prompt")
    at_far = retro[retro.gap == far].set_index("prompt").loc[at_near.index]
    tv_near = ci(at_near.tv)
    tv_far = stats.cluster_bootstrap_ci(at_far.tv, at_far.kind)
    grows = stats.cluster_bootstrap_ci(at_far.tv - at_near.tv, at_far.kind)
    same_far = ci(at_far.top1_same)
    by_gap = single["03"]["tv_by_gap"]
    return Evidence(
        {"far_lo": tv_far[1], "far_hi": tv_far[2], "grows_lo": grows[1]},
        f"TV {nearest(by_gap, near)}, {nearest(by_gap, far)}",
        f"TV {fmt_ci(*tv_near)} at +{near:g}, {fmt_ci(*tv_far)} at +{far:g} (by prompt kind), far minus near "
        f"{fmt_ci(*grows)}; top-1 kept in {fmt_ci(*same_far)} at +{far:g}",
    )


def _far_tv(study: Any) -> pd.Series:
    retro = study.table(NAME)
    return retro[retro.gap == retro.gap.max()].set_index("prompt").tv


def _decide(v: Mapping[str, float]) -> str:
    if below(v["far_hi"], CHANGES):
        return "refuted"
    if above(v["far_lo"], CHANGES):
        return "confirmed" if above(v["grows_lo"], 0.0) else "refined"
    return "undecided"


CLAIMS = (
    Claim("03.further", NAME, "re-placing a token further away changes what follows it",
          "notebook 03, one prompt", "' there' 43% at +0 -> ',\\n' at +16",
          ("study:retroactive.tv", "notebook:03.tv_by_gap"),
          _claim,
          Rule("TV of the next-token distribution at the largest gap against gap 0, and its paired "
               "difference from the smallest gap > 0", "prompt kind", {"changes": CHANGES},
               f"confirmed if lo95(TV far) > {CHANGES} and lo95(far - near) > 0; refined if lo95(TV far) > "
               f"{CHANGES} but the change does not grow with the distance; refuted if hi95(TV far) < "
               f"{CHANGES}; else undecided",
               _decide,
               (({"far_lo": 0.3, "far_hi": 0.5, "grows_lo": 0.1}, "confirmed"),
                ({"far_lo": 0.3, "far_hi": 0.5, "grows_lo": -0.1}, "refined"),
                ({"far_lo": 0.01, "far_hi": 0.05, "grows_lo": 0.0}, "refuted"),
                ({"far_lo": 0.05, "far_hi": 0.2, "grows_lo": 0.0}, "undecided")),
               written="with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"),
          headline=("TV at the largest gap", _far_tv)),
)  # fmt: skip
