"""Two models' studies over the same prompts, claim by claim: both verdicts side by side, and a paired test of
each claim's headline number between the models.

The prompt is the unit, as everywhere in the studies: each claim's headline (:attr:`Claim.headline`, e.g.
the retroactive TV at the largest gap) is one number per prompt, and the two models measured the *same*
prompts, so the right comparison is paired: the Wilcoxon signed-rank test of ``b - a`` over the prompts both
kept (:func:`tempo_lab.stats.paired_test`), with the mean difference and its bootstrap interval.

Contents: :func:`compare_claims`, :func:`headlines`, :func:`check_same_prompts` (the figure:
:func:`tempo_lab.studies.display.compare_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tempo_lab import stats
from tempo_lab.claims import Claim, claims_table, fmt_ci
from tempo_lab.phenomena import chosen


def check_same_prompts(a: Any, b: Any) -> None:
    fa, fb = a.manifest["prompt_set"], b.manifest["prompt_set"]
    if fa != fb or a.manifest["n_prompts"] != b.manifest["n_prompts"]:
        raise ValueError(
            f"the studies measured different prompts ({a.manifest['prompt_set_name']!r}, "
            f"{a.manifest['n_prompts']} prompts in {a.folder.path}; {b.manifest['prompt_set_name']!r}, "
            f"{b.manifest['n_prompts']} in {b.folder.path}): a paired comparison needs the same prompt set"
        )


def headlines(study: Any, claims: Sequence[Claim]) -> pd.DataFrame:
    """``(prompts, claims)``: each claim's headline number per prompt (columns: the claim texts; claims
    without a headline are left out; a prompt that gave no value is NaN)."""
    columns = {c.text: c.headline[1](study).astype(float) for c in claims if c.headline is not None}
    for text, values in columns.items():
        if not values.index.is_unique:
            raise ValueError(f"the headline of {text!r} gave several values for one prompt")
    return pd.DataFrame(columns).sort_index()


def compare_claims(
    a: Any,
    b: Any,
    single: Mapping[str, Mapping[str, Any]],
    phenomena: Sequence[str] | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> pd.DataFrame:
    """One row per claim both studies measured (and of ``phenomena``, when given): each study's measurement
    and verdict (:func:`claims_table`), whether the verdicts agree, what decided them (model, dtype, prompts),
    and the paired test of the headline between the models (``difference``: ``names[1] - names[0]`` per
    prompt, mean with its 95% interval; Wilcoxon ``p``, rank-biserial ``effect``, ``n`` prompts; for a 0/1
    headline, the exact McNemar ``p`` of the discordant prompts). ``single``:
    the single-prompt notebooks' key numbers (the verdicts do not read them). Raises ``ValueError`` when the
    two studies measured different prompt sets."""
    check_same_prompts(a, b)
    claims = [c for c in chosen(a, phenomena) if c.phenomenon in b.phenomena]
    ta, tb = claims_table(a, single, claims), claims_table(b, single, claims)
    ha, hb = headlines(a, claims), headlines(b, claims)
    rows = []
    for claim, (_, ra), (_, rb) in zip(claims, ta.iterrows(), tb.iterrows(), strict=True):
        row = {"claim": claim.text,
               f"{names[0]}: at scale": ra["at scale"], f"{names[0]}: verdict": ra.verdict,
               f"{names[1]}: at scale": rb["at scale"], f"{names[1]}: verdict": rb.verdict,
               "verdicts agree": ra.verdict == rb.verdict,
               "decided by": f"{ra['decided by']}; {rb['decided by']}"}  # fmt: skip
        row.update(_paired(claim, ha, hb, names))
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(claim: Claim, ha: pd.DataFrame, hb: pd.DataFrame, names: tuple[str, str]) -> dict:
    empty = {"headline": "", "difference": "", "p": float("nan"), "effect": float("nan"), "n": 0}
    if claim.headline is None:
        return empty
    both = ha.index.intersection(hb.index)
    x, y = ha.loc[both, claim.text].to_numpy(), hb.loc[both, claim.text].to_numpy()
    kept = ~(np.isnan(x) | np.isnan(y))
    if kept.any() and np.isin(np.concatenate([x[kept], y[kept]]), (0.0, 1.0)).all():  # paired 0/1: McNemar
        test = stats.mcnemar(x[kept].astype(bool), y[kept].astype(bool))
        mean, lo, hi = stats.bootstrap_ci(y[kept] - x[kept])
        return {"headline": claim.headline[0],
                "difference": f"{fmt_ci(mean, lo, hi, 4)} (McNemar: {test['b01']} 0 -> 1, {test['b10']} 1 -> "
                              f"0)",
                "p": test["p"], "effect": float("nan"), "n": test["n"]}  # fmt: skip
    try:
        test = stats.paired_test(y, x)
    except ValueError as exc:  # fewer than two prompts with a value on both models
        return {**empty, "headline": claim.headline[0], "difference": f"no paired test: {exc}"}
    return {
        "headline": claim.headline[0],
        "difference": fmt_ci(test["mean_diff"], test["lo"], test["hi"], 4),
        "p": test["p"],
        "effect": test["effect"],
        "n": test["n"],
    }
