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
from tempo_lab.claims import Claim, Evidence, ci, fmt_ci
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


def _paired(study: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = study.table(NAME)
    iso = table[table["mode"] == "isolated"].set_index("prompt")
    return iso, table[table["mode"] == "visible"].set_index("prompt").loc[iso.index]


def _identical(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    iso, _ = _paired(study)
    same = ci(iso.identical_text)
    one = single["04"]
    return Evidence(
        {"lo": same[1], "hi": same[2]},
        "identical" if one["identical_sets"] else f"differ from step {one['first_differing_step']}",
        f"identical in {fmt_ci(*same)} of {len(iso)} prompts",
    )


def _later(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    iso, vis = _paired(study)
    one = f"{single['04']['later_mass_relative_change_mean']:+.2%} (one prompt)"
    try:
        paired = stats.paired_test(iso.later_mass.to_numpy(), vis.later_mass.to_numpy())
    except ValueError as exc:  # too few prompts formed parallel sets in both modes
        return Evidence({"p": float("nan")}, one, f"no paired test: {exc}")
    difference = fmt_ci(paired["mean_diff"], paired["lo"], paired["hi"], 4)
    return Evidence({"p": paired["p"]}, one, (
        f"{paired['relative']:+.2%}, difference {difference}, Wilcoxon p = {paired['p']:.2g}, "
        f"effect r = {paired['effect']:+.2f}, {paired['n']} prompts"
    ))  # fmt: skip


def _later_difference(study: Any) -> pd.Series:
    iso, vis = _paired(study)
    return iso.later_mass - vis.later_mass


def _decide_identical(v: Mapping[str, float]) -> str:
    return "confirmed" if v["lo"] > 0.9 else ("refuted" if v["hi"] < 0.5 else "refined")


def _decide_later(v: Mapping[str, float]) -> str:
    if v["p"] != v["p"]:  # NaN: no test
        return "undecided"
    return "confirmed" if v["p"] >= 0.05 else "refuted"


CLAIMS = (
    Claim(NAME, "isolated and visible sets give identical texts", "identical in 4 of 4 runs",
          "confirmed if the interval lies above 0.9, refuted if below 0.5",
          ("study:isolation.identical_text", "notebook:04.identical_sets"), _identical, _decide_identical,
          ("identical texts (1) or not (0)", lambda s: _paired(s)[0].identical_text.astype(float))),
    Claim(NAME, "later tokens' attention on parallel sets does not depend on the mode",
          "-2.8% +/- 27.1% (p = 0.505, 48 prompts)",
          "confirmed if the paired Wilcoxon test finds no difference (p >= 0.05)",
          ("study:isolation.later_mass", "notebook:04.later_mass_relative_change_mean"),
          _later, _decide_later,
          ("later attention on sets, isolated - visible", _later_difference)),
)  # fmt: skip
