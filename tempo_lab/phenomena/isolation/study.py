"""Isolated against visible over a prompt set: the batched measurement, its single-prompt twin, the study's
figure, and the two seed claims it decides (identical texts; later attention on parallel sets).

Contents: :func:`measure`, :func:`single_rows`, :func:`figure`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tempo_lab import masks, stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, fmt_ci
from tempo_lab.generators import ParallelTokenGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.batching import tempo_runs
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.phenomena.isolation.probe import NAME
from tempo_lab.summaries import first_difference, mean_or_nan, parallel_later_mass


def _rows(i: int, runs: dict, maps: dict) -> list[dict]:
    """Both modes' rows of one prompt, from its runs and their ``(N, N)`` attention maps."""
    iso, vis = runs["isolated"], runs["visible"]
    differ = first_difference(iso, vis)
    return [{"prompt": i, "mode": mode, "later_mass": parallel_later_mass(r, maps[mode]),
             "parallel_sets": sum(s >= 2 for s in r.set_sizes), "mean_set_size": mean_or_nan(r.set_sizes),
             "identical_text": iso.text == vis.text, "first_difference": differ, "text": r.text}
            for mode, r in runs.items()]  # fmt: skip


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x intra-set mode (TEMPO at ``mode_threshold``): later tokens' mean attention on each
    parallel set (2+ members), the sets' sizes, whether both modes give the same text, and the first step
    whose sets differ (``-1`` when none)."""
    common = {"threshold": cond.mode_threshold, "max_steps": cond.mode_steps}
    plans = [(b, {**common, "intraset": m}) for b in range(len(batch)) for m in masks.INTRASET_MODES]
    results, maps = tempo_runs(lm, batch, plans, attention=True)
    rows = []
    for b, (i, _) in enumerate(batch):
        runs = dict(zip(masks.INTRASET_MODES, results[2 * b : 2 * b + 2], strict=True))
        rows += _rows(i, runs, dict(zip(masks.INTRASET_MODES, maps[2 * b : 2 * b + 2], strict=True)))
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` alone: both TEMPO runs, attention captured step by
    step."""
    gen = ParallelTokenGenerator(lm)
    runs = {m: gen.generate(ids, threshold=cond.mode_threshold, max_steps=cond.mode_steps, intraset=m,
                            capture=True, progress=False) for m in masks.INTRASET_MODES}  # fmt: skip
    return _rows(i, runs, {m: r.attention_map() for m, r in runs.items()})


# --- the claims ---


def _modes(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The isolated and the visible rows of the study's ``isolation`` table, indexed by prompt, aligned."""
    iso = table[table["mode"] == "isolated"].set_index("prompt")
    return iso, table[table["mode"] == "visible"].set_index("prompt").loc[iso.index]


def _paired(study: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _modes(study.table(NAME))


def _with_sets(study: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both modes' rows of the prompts that formed a parallel set in either mode: only there can isolation
    act (a prompt without one gives the same text in both modes by construction)."""
    iso, vis = _paired(study)
    formed = (iso.parallel_sets > 0) | (vis.parallel_sets > 0)
    return iso[formed], vis[formed]


def _identical(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    iso, _ = _with_sets(study)
    everyone, _ = _paired(study)
    if len(iso) == 0:
        return Evidence({"lo": NAN, "hi": NAN}, "no prompt formed a set", "no prompt formed a parallel set")
    same = stats.cluster_bootstrap_ci(iso.identical_text.astype(float), iso.kind)
    by_kind = iso.groupby("kind").identical_text.mean().sort_values()
    one = single["04"]
    return Evidence(
        {"lo": same[1], "hi": same[2]},
        "identical" if one["identical_sets"] else f"differ from step {one['first_differing_step']}",
        f"identical in {fmt_ci(*same)} of the {len(iso)} prompts that formed a set (resampled by prompt "
        f"kind; {len(everyone) - len(iso)} prompts formed none); by kind from {by_kind.index[0]} "
        f"{by_kind.iloc[0]:.2f} to {by_kind.index[-1]} {by_kind.iloc[-1]:.2f}",
    )


def relative_later(table: pd.DataFrame) -> pd.Series:
    """Per prompt with sets in both modes (the study's ``isolation`` table): (isolated - visible) / visible
    later-token attention on the sets; indexed by prompt. The statistic of claim 04.later."""
    iso, vis = _modes(table)
    both = iso.later_mass.notna() & vis.later_mass.notna() & (vis.later_mass > 0)
    return (iso.later_mass[both] - vis.later_mass[both]) / vis.later_mass[both]


def _relative_later(study: Any) -> pd.Series:
    return relative_later(study.table(NAME))


def _later(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    relative = _relative_later(study)
    one = f"{single['04']['later_mass_relative_change_mean']:+.2%} (one prompt)"
    if len(relative) < 2:
        return Evidence({"lo": NAN, "hi": NAN, "lo90": NAN, "hi90": NAN, "p": NAN}, one,
                        f"no test: {len(relative)} prompt(s) formed sets in both modes")  # fmt: skip
    same = stats.tost(relative.to_numpy(), SAME_ATTENTION)
    mean, lo, hi = stats.t_interval(relative.to_numpy())
    return Evidence({"lo": lo, "hi": hi, "lo90": same["lo"], "hi90": same["hi"], "p": same["p"]}, one, (
        f"relative change {mean:+.2%} (95% [{lo:+.2%}, {hi:+.2%}], 90% [{same['lo']:+.2%}, "
        f"{same['hi']:+.2%}]); TOST p = {same['p']:.2g} for a margin of {SAME_ATTENTION:.0%}, "
        f"{same['n']} prompts"
    ))  # fmt: skip


def _later_difference(study: Any) -> pd.Series:
    iso, vis = _paired(study)
    return iso.later_mass - vis.later_mass


NAN = float("nan")
SAME_ATTENTION = 0.1  # "does not depend on the mode": the relative change lies within +/-10% (equivalence)


def _decide_identical(v: Mapping[str, float]) -> str:
    if above(v["lo"], 0.9):
        return "confirmed"
    if below(v["hi"], 0.5):
        return "refuted"
    return "refined" if above(v["lo"], 0.5) else "undecided"


def _decide_later(v: Mapping[str, float]) -> str:
    if v["lo90"] > -SAME_ATTENTION and v["hi90"] < SAME_ATTENTION:
        return "confirmed"
    if above(v["lo"], SAME_ATTENTION) or below(v["hi"], -SAME_ATTENTION):
        return "refuted"
    return "undecided"


CLAIMS = (
    Claim("04.identical", NAME, "isolated and visible sets give identical texts",
          "notebook 04, one prompt", "identical in 4 of 4 runs",
          ("study:isolation.identical_text", "study:isolation.parallel_sets", "notebook:04.identical_sets"),
          _identical,
          Rule("share of prompts, among those that formed a parallel set in either mode, whose isolated and "
               "visible texts are identical", "prompt kind", {"identical": 0.9, "most": 0.5},
               "confirmed if lo95 > 0.9; refuted if hi95 < 0.5; refined if lo95 > 0.5 (most, not all); else "
               "undecided",
               _decide_identical,
               (({"lo": 0.95, "hi": 0.99}, "confirmed"), ({"lo": 0.2, "hi": 0.4}, "refuted"),
                ({"lo": 0.6, "hi": 0.8}, "refined"), ({"lo": 0.4, "hi": 0.6}, "undecided"),
                ({"lo": NAN, "hi": NAN}, "undecided")),
               written="with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"),
          headline=("identical texts (1) or not (0)", lambda s: _paired(s)[0].identical_text.astype(float))),
    Claim("04.later", NAME, "later tokens' attention on parallel sets does not depend on the mode",
          "notebook 04, one prompt", "-2.8% +/- 27.1% (p = 0.505, 48 prompts)",
          ("study:isolation.later_mass", "notebook:04.later_mass_relative_change_mean"),
          _later,
          Rule("per prompt with sets in both modes, the relative change of later tokens' attention on the "
               "sets, isolated against visible", "prompt", {"same": SAME_ATTENTION},
               f"confirmed if equivalent within +/-{SAME_ATTENTION:.0%} (TOST: the 90% t-interval inside); "
               f"refuted if the 95% interval lies wholly outside +/-{SAME_ATTENTION:.0%}; else undecided",
               _decide_later,
               (({"lo": -0.05, "hi": 0.05, "lo90": -0.04, "hi90": 0.04, "p": 0.001}, "confirmed"),
                ({"lo": 0.2, "hi": 0.4, "lo90": 0.22, "hi90": 0.38, "p": 1.0}, "refuted"),
                ({"lo": -0.3, "hi": 0.2, "lo90": -0.25, "hi90": 0.15, "p": 0.4}, "undecided"),
                ({"lo": NAN, "hi": NAN, "lo90": NAN, "hi90": NAN, "p": NAN}, "undecided")),
               p="p", written="with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"),
          headline=("later attention on sets, isolated - visible", _later_difference)),
)  # fmt: skip
