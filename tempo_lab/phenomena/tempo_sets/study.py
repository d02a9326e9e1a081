"""TEMPO set sizes per threshold over a prompt set: the batched measurement, its single-prompt twin and the
claim.

Contents: :func:`measure`, :func:`single_rows`, :data:`CLAIMS`, :data:`NAME`, :data:`TITLE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, ci, fmt_ci
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.batching import tempo_runs
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.summaries import mean_or_nan

NAME, TITLE = "tempo_sets", "TEMPO sets"


def _row(i: int, threshold: float, run: ParallelResult) -> dict:
    sizes = run.set_sizes
    return {"prompt": i, "threshold": threshold, "mean_set_size": mean_or_nan(sizes),
            "max_set_size": max(sizes, default=0),
            "parallel_share": mean_or_nan([s >= 2 for s in sizes])}  # fmt: skip


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x threshold (isolated TEMPO): mean and largest set size, and the share of steps whose set
    has two or more members."""
    plans = [(b, {"threshold": t, "max_steps": cond.tempo_steps}) for b in range(len(batch))
             for t in cond.tempo_thresholds]  # fmt: skip
    runs, _ = tempo_runs(lm, batch, plans)
    return [_row(batch[b][0], opts["threshold"], r) for (b, opts), r in zip(plans, runs, strict=True)]


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` alone, through the TEMPO generator."""
    gen = ParallelTokenGenerator(lm)
    return [_row(i, th, gen.generate(ids, threshold=th, max_steps=cond.tempo_steps, progress=False))
            for th in cond.tempo_thresholds]  # fmt: skip


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    tempo = study.table(NAME)
    sizes = {t: ci(tempo[tempo.threshold == t].mean_set_size) for t in sorted(tempo.threshold.unique())}
    tenth = tempo[(tempo.threshold == 0.1) & tempo.parallel_share.notna()]
    share = stats.cluster_bootstrap_ci(tenth.parallel_share, tenth.kind) if len(tenth) else None
    return Evidence(
        {"share_lo": share[1], "share_hi": share[2]} if share else {"share_lo": NAN, "share_hi": NAN},
        f"sizes {single['04']['set_sizes']} at 0.1",
        "mean size "
        + ", ".join(f"{fmt_ci(*v)} at {t:g}" for t, v in sizes.items())
        + (f"; 2+ members in {fmt_ci(*share)} of steps at 0.1 (by prompt kind)" if share else ""),
    )


def _share_at_tenth(study: Any) -> pd.Series:
    tempo = study.table(NAME)
    return tempo[tempo.threshold == 0.1].set_index("prompt").parallel_share


NAN = float("nan")


def _decide(v: Mapping[str, float]) -> str:
    if above(v["share_lo"], 0.5):
        return "confirmed"
    return "refuted" if below(v["share_hi"], 0.5) else "undecided"


CLAIMS = (
    Claim("04.sets", NAME, "every token above the threshold joins the set ({sat, jumped, ran} at 0.1)",
          "notebook 04, one prompt", "3 members at 0.1",
          ("study:tempo_sets.parallel_share (threshold 0.1)", "notebook:04.set_sizes"),
          _claim,
          Rule("per prompt, the share of TEMPO steps at threshold 0.1 whose set has 2+ members",
               "prompt kind",
               {"most": 0.5},
               "confirmed if lo95(share) > 0.5 (most steps form a set, as the example shows); refuted if "
               "hi95 < 0.5 (a set is the exception); else undecided",
               _decide,
               (({"share_lo": 0.7, "share_hi": 0.8}, "confirmed"),
                ({"share_lo": 0.2, "share_hi": 0.3}, "refuted"),
                ({"share_lo": 0.4, "share_hi": 0.6}, "undecided"),
                ({"share_lo": NAN, "share_hi": NAN}, "undecided")),
               written="with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"),
          headline=("share of steps with 2+ members at 0.1", _share_at_tenth)),
)  # fmt: skip
