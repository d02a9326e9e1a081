"""What notebook 09's stored study says: each layer's mean recovered share (:func:`curve`), per-prompt shares
of the band groups (:func:`shares`), the at-scale figure, the sentence that names the layers, and the claims
(a)-(d) it decides (:data:`CLAIMS`). The rows themselves are :mod:`tempo_lab.phenomena.localisation.study`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tempo_lab.claims import Claim, Evidence, ci, fmt_ci
from tempo_lab.phenomena.localisation.probe import ENTRY, NAME, entry_layers
from tempo_lab.phenomena.localisation.study import HALF_STEPS, N_GROUPS


def curve(table: pd.DataFrame, measure_: str, gap: float | None = None) -> pd.DataFrame:
    """Per ``index`` (layer or band group), the mean ``value`` over prompts with its 95% bootstrap interval:
    ``index, mean, lo, hi, n`` (NaN where no prompt gave a value: every effect under ``MIN_EFFECT``)."""
    rows = table[table.measure == measure_]
    if gap is not None:
        rows = rows[np.isclose(rows.gap, gap)]
    out = []
    for index, part in rows.groupby("index"):
        mean, lo, hi = _ci_or_nan(part.value)
        out.append(
            {"index": int(index), "mean": mean, "lo": lo, "hi": hi, "n": int(part.value.notna().sum())}
        )
    return pd.DataFrame(out)


def shares(table: pd.DataFrame, measure_: str, gap: float | None = None) -> pd.DataFrame:
    """Per prompt, each band group's share of ``measure_`` (clipped at 0) over the groups: prompts x
    groups."""
    rows = table[table.measure == measure_]
    if gap is not None:
        rows = rows[np.isclose(rows.gap, gap)]
    wide = rows.pivot_table(index="prompt", columns="index", values="value").clip(lower=0)
    return wide.div(wide.sum(axis=1), axis=0).dropna()


def localisation_sentence(c: pd.DataFrame, levels: tuple[float, float] = ENTRY) -> str:
    """ "layers X-Y (mean recovered fraction a [CI] at X, b [CI] at Y)" for a recovery :func:`curve`."""
    x, y = entry_layers(c["mean"].tolist(), levels)
    if x is None or y is None:
        return f"no layer restores {levels[1]:.0%} of it on average"
    at = {int(r["index"]): r for _, r in c.iterrows()}
    return (
        f"layers {x}-{y} (mean recovered fraction {fmt_ci(at[x]['mean'], at[x]['lo'], at[x]['hi'])} at "
        f"{x}, {fmt_ci(at[y]['mean'], at[y]['lo'], at[y]['hi'])} at {y})"
    )


# --- the claims notebook 09 decides ---


def _far(table: pd.DataFrame) -> float:
    return float(max(table[table.measure == "recovered"].gap.unique()))


def _layers_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    far = sorted(table[table.measure == "recovered"].gap.unique())[-2:][0]  # the nearer of the far gaps
    c = curve(table, "recovered", far)
    x, y = entry_layers(c["mean"].tolist())
    n_layers = len(c)
    span = float("nan") if x is None or y is None else float(y - x + 1)
    one = single["09"]
    return Evidence(
        {"span": span, "n_layers": float(n_layers)},
        f"layers {one['comma_entry_46'][0]}-{one['comma_entry_46'][1]} at +46",
        f"at +{far:g}: {localisation_sentence(c)}",
    )


def _decide_layers(v: Mapping[str, float]) -> str:
    if np.isnan(v["span"]):
        return "undecided"
    return "confirmed" if v["span"] <= v["n_layers"] / 3 else "refined"


def _similarity(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    both = a.index.intersection(b.index)
    x, y = a.loc[both].to_numpy(), b.loc[both].to_numpy()
    return pd.Series(
        (x * y).sum(1) / np.maximum(1e-12, np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    )


def _half_step_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    sim = _similarity(shares(table, "band_tv", HALF_STEPS[0]), shares(table, "band_tv", HALF_STEPS[1]))
    mean, lo, hi = _ci_or_nan(sim)
    return Evidence(
        {"lo": lo, "hi": hi},
        f"band-profile similarity {single['09']['half_step_band_similarity']:.3f}",
        f"cosine similarity of the band-TV profiles at +0.5 and +1: {fmt_ci(mean, lo, hi)}",
    )


def _decide_similar(v: Mapping[str, float]) -> str:
    if np.isnan(v["lo"]):
        return "undecided"
    return "confirmed" if v["lo"] > 0.8 else "refuted" if v["hi"] < 0.5 else "refined"


def _ci_or_nan(values: pd.Series) -> tuple[float, float, float]:
    """:func:`ci`, or NaNs when no prompt gave a value (e.g. no previous-token heads on a tiny model)."""
    values = values.dropna()
    return ci(values) if len(values) else (float("nan"),) * 3


def _isolation_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    moved = entry_layers(curve(table, "recovered", _far(table))["mean"].tolist())
    iso = entry_layers(curve(table, "isolation_recovered")["mean"].tolist())
    known = None not in (*moved, *iso)
    overlap = float(known and max(moved[0], iso[0]) <= min(moved[1], iso[1])) if known else float("nan")
    one = single["09"]
    return Evidence(
        {"overlap": overlap},
        f"isolation enters at layers {one['isolation_entry'][0]}-{one['isolation_entry'][1]}",
        f"isolated vs visible: {localisation_sentence(curve(table, 'isolation_recovered'))}; the move "
        f"+{_far(table):g}: layers {moved[0]}-{moved[1]}",
    )


def _decide_overlap(v: Mapping[str, float]) -> str:
    return "undecided" if np.isnan(v["overlap"]) else "confirmed" if v["overlap"] else "refuted"


def _bands_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    drop, tv_ = shares(table, "prev_drop"), shares(table, "prev_tv")
    quarter, half = max(1, N_GROUPS // 4), N_GROUPS // 2
    top = _ci_or_nan(drop[drop.columns[:quarter]].sum(axis=1))
    low_tv = _ci_or_nan(tv_[tv_.columns[half:]].sum(axis=1))
    top_tv = _ci_or_nan(tv_[tv_.columns[:quarter]].sum(axis=1))
    one = single["09"]
    return Evidence(
        {"top_lo": top[1], "top_hi": top[2], "low_tv_hi": low_tv[2]},
        f"top quarter {one['prev_drop_top_quarter']:.3f} of the score drop, "
        f"{one['prev_tv_top_quarter']:.3f} of the TV",
        f"top quarter of the bands: {fmt_ci(*top)} of the previous-token score drop, {fmt_ci(*top_tv)} "
        f"of the next-token TV; lowest half: {fmt_ci(*low_tv)} of the TV "
        f"({len(drop)} prompts with previous-token heads)",
    )


def _decide_bands(v: Mapping[str, float]) -> str:
    if np.isnan(v["top_lo"]):
        return "undecided"
    if v["top_lo"] > 0.5 and v["low_tv_hi"] < 0.25:
        return "confirmed"
    return "refuted" if v["top_hi"] < 0.25 else "refined"


CLAIMS = (
    Claim(
        NAME,
        "(a) the retroactive gap effect is written in by a block of consecutive layers",
        "notebook 03: the comma's next-token distribution moves with the gap (TV 0.38 at +46)",
        f"confirmed if the mean recovery curve at the far gap rises from {ENTRY[0]} to {ENTRY[1]} within a "
        "third of the layers; refined if it takes longer; undecided if it never gets there",
        ("study:localisation.recovered", "notebook:09.comma_entry_46"),
        _layers_claim,
        _decide_layers,
    ),
    Claim(
        NAME,
        "(b) a half step is carried by the same rotary bands as an integer step",
        "[0, 1, 2, 2.5] vs [0, 1, 2, 3] changes the top tokens (max probability difference 0.0263)",
        "per prompt, the cosine similarity of the band-TV profiles at +0.5 and +1; confirmed if its mean "
        "interval lies above 0.8, refuted if below 0.5, refined otherwise",
        ("study:localisation.band_tv", "notebook:09.half_step_band_similarity"),
        _half_step_claim,
        _decide_similar,
    ),
    Claim(
        NAME,
        "(c) the isolated/visible divergence is written in by the same layers as a position move",
        "notebook 04: the two modes' texts part at step 3",
        "confirmed if the layers where the mean isolation recovery rises from 0.25 to 0.75 overlap those of "
        "the far gap's, refuted if they are disjoint",
        ("study:localisation.isolation_recovered", "notebook:09.isolation_entry"),
        _isolation_claim,
        _decide_overlap,
    ),
    Claim(
        NAME,
        "(d) the highest rotary frequencies build the previous-token heads; the lowest carry little position",
        "Barbero et al. (ICLR 2025), Gemma 7B",
        "per prompt, each band group's share of the previous-token score drop when it loses its positions; "
        "confirmed if the top quarter's mean share interval lies above 0.5 and the lowest half's share of "
        "the next-token TV lies below 0.25, refuted if the top quarter's lies below 0.25, refined otherwise",
        ("study:localisation.prev_drop", "study:localisation.prev_tv", "notebook:09.prev_drop_top_quarter"),
        _bands_claim,
        _decide_bands,
    ),
)
