"""What notebook 09's stored study says: each layer's mean recovered share (:func:`curve`), per-prompt shares
of the band groups (:func:`shares`), the at-scale figure, the sentence that names the layers, and the claims
(a)-(d) it decides (:data:`CLAIMS`). The rows themselves are :mod:`tempo_lab.phenomena.localisation.study`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, ci, fmt_ci
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
        f"layers {x}-{y} (mean recovered fraction {fmt_ci(at[x]['mean'], at[x]['lo'], at[x]['hi'])} at {x}, "
        f"{fmt_ci(at[y]['mean'], at[y]['lo'], at[y]['hi'])} at {y})"
    )


# --- the claims notebook 09 decides ---

WRITTEN = "with the data of results/09_where_position_acts (2026-11); corrected 2026-12-07"
NAN = float("nan")
#: (a): the effects a prompt must reach to be localised, and the aggregates over prompts, for the sensitivity
MIN_EFFECTS = (0.001, 0.01)
AGGREGATES = ("ratio of means", "median", "mean")
SHUFFLES = 20  # (b): random pairings of a prompt's +0.5 profile with other prompts' +1 profiles


def _far(table: pd.DataFrame) -> float:
    return float(max(table[table.measure == "recovered"].gap.unique()))


def recovery(table: pd.DataFrame, gap: float, min_effect: float, aggregate: str) -> list[float]:
    """Per layer, the recovered share at ``gap`` over the prompts whose effect (TV) reaches ``min_effect``:
    ``"ratio of means"`` (the restored TV summed over prompts over their summed TV: each prompt weighs by its
    effect, so a tiny effect's wild ratio cannot dominate), ``"median"`` or ``"mean"`` of the per-prompt
    shares."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    effect = table[(table.measure == "effect") & np.isclose(table.gap, gap)].set_index("prompt").value
    rows = table[(table.measure == "recovered") & np.isclose(table.gap, gap)]
    rows = rows[rows.prompt.map(effect).ge(min_effect)].dropna(subset=["value"])
    wide = rows.pivot_table(index="prompt", columns="index", values="value")
    if wide.empty:
        return []
    if aggregate == "median":
        return wide.median().tolist()
    if aggregate == "mean":
        return wide.mean().tolist()
    w = effect.loc[wide.index]
    return (wide.mul(w, axis=0).sum() / w.sum()).tolist()


def spans(table: pd.DataFrame, gap: float) -> pd.DataFrame:
    """The sensitivity of (a): for each minimum effect x aggregate, the entry layers (``first``, ``last``),
    the ``span`` and the prompts kept."""
    effect = table[(table.measure == "effect") & np.isclose(table.gap, gap)].value
    rows = []
    for min_effect in MIN_EFFECTS:
        for aggregate in AGGREGATES:
            x, y = entry_layers(recovery(table, gap, min_effect, aggregate))
            rows.append({"min_effect": min_effect, "aggregate": aggregate, "first": x, "last": y,
                         "span": NAN if x is None or y is None else float(y - x + 1),
                         "prompts": int((effect >= min_effect).sum())})  # fmt: skip
    return pd.DataFrame(rows)


def _layers_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    far = _far(table)
    n_layers = len(curve(table, "recovered", far))
    sens = spans(table, far)
    main = sens[(sens.min_effect == MIN_EFFECTS[-1]) & (sens["aggregate"] == AGGREGATES[0])].iloc[0]
    shown = "; ".join(
        f"{r.aggregate}, effect >= {r.min_effect:g}: "
        + ("never" if r.span != r.span else f"layers {r.first}-{r.last}")
        for r in sens.itertuples()
    )
    one = single["09"]
    return Evidence(
        {"span": float(main.span), "n_layers": float(n_layers)},
        f"layers {one['comma_entry_46'][0]}-{one['comma_entry_46'][1]} at +46",
        f"at +{far:g}, {int(main.prompts)} prompts with an effect >= {MIN_EFFECTS[-1]:g}, ratio of means: "
        + (f"layers {main['first']}-{main['last']} ({main.span:.0f} of {n_layers})" if main.span == main.span
           else "no layer restores 75%")
        + f". Sensitivity: {shown}",
    )  # fmt: skip


def _decide_layers(v: Mapping[str, float]) -> str:
    if np.isnan(v["span"]):
        return "undecided"
    if v["span"] <= v["n_layers"] / 3:
        return "confirmed"
    return "refined" if v["span"] <= 2 * v["n_layers"] / 3 else "refuted"


def _similarity(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    both = a.index.intersection(b.index)
    x, y = a.loc[both].to_numpy(), b.loc[both].to_numpy()
    return pd.Series(
        (x * y).sum(1) / np.maximum(1e-12, np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)), index=both
    )


def shuffled_similarity(a: pd.DataFrame, b: pd.DataFrame, *, n: int = SHUFFLES, seed: int = 0) -> pd.Series:
    """Per prompt, the mean cosine similarity of its profile in ``a`` with *other* prompts' profiles in
    ``b`` (``n`` random pairings, none with itself): what the similarity is when the pairing carries no
    information, because every profile shares one shape."""
    both = a.index.intersection(b.index)
    x, y = a.loc[both].to_numpy(), b.loc[both].to_numpy()
    rng = np.random.default_rng(seed)
    total = np.zeros(len(both))
    for _ in range(n):
        other = (np.arange(len(both)) + rng.integers(1, len(both), size=len(both))) % len(both)
        z = y[other]
        total += (x * z).sum(1) / np.maximum(1e-12, np.linalg.norm(x, axis=1) * np.linalg.norm(z, axis=1))
    return pd.Series(total / n, index=both)


def _half_step_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    half, whole = shares(table, "band_tv", HALF_STEPS[0]), shares(table, "band_tv", HALF_STEPS[1])
    own, other = _similarity(half, whole), shuffled_similarity(half, whole)
    if len(own) < 2:
        return Evidence({"lo": NAN, "hi": NAN}, "", "too few prompts with band profiles")
    # the share of the shuffled pairing's dissimilarity that the prompt's own pairing removes (ratio of means)
    excess = stats.cluster_bootstrap_ci((own - other) / (1 - other), own.index, weights=1 - other)
    return Evidence(
        {"lo": excess[1], "hi": excess[2]},
        f"band-profile similarity {single['09']['half_step_band_similarity']:.3f}",
        f"cosine similarity of the band-TV profiles at +0.5 and +1: {fmt_ci(*ci(own))} with the prompt's own "
        f"+1, {fmt_ci(*ci(other))} with another prompt's; the own pairing removes {fmt_ci(*excess)} of the "
        f"shuffled pairing's dissimilarity",
    )


def _decide_similar(v: Mapping[str, float]) -> str:
    if above(v["lo"], 0.5):
        return "confirmed"
    if below(v["hi"], 0.1):
        return "refuted"
    return "refined" if above(v["lo"], 0.1) else "undecided"


def _ci_or_nan(values: pd.Series) -> tuple[float, float, float]:
    """:func:`ci`, or NaNs when no prompt gave a value (e.g. no previous-token heads on a tiny model)."""
    values = values.dropna()
    return ci(values) if len(values) else (NAN,) * 3


def _isolation_claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    table = study.table(NAME)
    far = _far(table)
    moved = entry_layers(recovery(table, far, MIN_EFFECTS[-1], AGGREGATES[0]))
    iso = entry_layers(curve(table, "isolation_recovered")["mean"].tolist())
    known = None not in (*moved, *iso)
    overlap = float(known and max(moved[0], iso[0]) <= min(moved[1], iso[1])) if known else NAN
    one = single["09"]
    return Evidence(
        {"overlap": overlap},
        f"isolation enters at layers {one['isolation_entry'][0]}-{one['isolation_entry'][1]}",
        f"isolated vs visible: {localisation_sentence(curve(table, 'isolation_recovered'))}; the move "
        f"+{far:g} (as in (a)): layers {moved[0]}-{moved[1]}",
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
        f"top quarter {one['prev_drop_top_quarter']:.3f} of the score drop, {one['prev_tv_top_quarter']:.3f} "
        f"of the TV",
        f"top quarter of the bands: {fmt_ci(*top)} of the previous-token score drop, {fmt_ci(*top_tv)} of "
        f"the next-token TV; lowest half: {fmt_ci(*low_tv)} of the TV ({len(drop)} prompts with "
        f"previous-token heads)",
    )


def _decide_bands(v: Mapping[str, float]) -> str:
    if np.isnan(v["top_lo"]):
        return "undecided"
    if v["top_lo"] > 0.5 and v["low_tv_hi"] < 0.25:
        return "confirmed"
    return "refuted" if v["top_hi"] < 0.25 else "refined"


CLAIMS = (
    Claim(
        "09.a", NAME, "(a) the retroactive gap effect is written in by a block of consecutive layers",
        "notebook 03: the comma's next-token distribution moves with the gap", "TV 0.38 at +46 (one prompt)",
        ("study:localisation.recovered", "study:localisation.effect", "notebook:09.comma_entry_46"),
        _layers_claim,
        Rule(f"per layer, the share of the far gap's TV that the clean residual stream restores, as a ratio "
             f"of means over the prompts whose TV reaches {MIN_EFFECTS[-1]}; the span from the first layer "
             f"restoring {ENTRY[0]} to the first restoring {ENTRY[1]}", "prompt",
             {"block": 1 / 3, "spread": 2 / 3},
             "confirmed if the span is at most a third of the layers; refined if at most two thirds; refuted "
             "if longer (no block); undecided if no layer restores 0.75 (the sensitivity to the aggregate "
             "and the minimum effect is shown beside it)",
             _decide_layers,
             (({"span": 6.0, "n_layers": 30.0}, "confirmed"), ({"span": 13.0, "n_layers": 30.0}, "refined"),
              ({"span": 25.0, "n_layers": 30.0}, "refuted"), ({"span": NAN, "n_layers": 30.0}, "undecided")),
             written=WRITTEN),
    ),
    Claim(
        "09.b", NAME, "(b) a half step is carried by the same rotary bands as an integer step",
        "notebook 02: fractional positions are meaningful",
        "[0, 1, 2, 2.5] vs [0, 1, 2, 3] changes the top tokens (max probability difference 0.0263)",
        ("study:localisation.band_tv", "notebook:09.half_step_band_similarity"),
        _half_step_claim,
        Rule(f"per prompt, the cosine similarity of the band-TV profiles at +0.5 and +1 (own) and against "
             f"other prompts' +1 profiles ({SHUFFLES} shuffles); the share of the shuffled dissimilarity the "
             f"own pairing removes, (own - shuffled) / (1 - shuffled) as a ratio of means", "prompt",
             {"same": 0.5, "none": 0.1},
             "confirmed if lo95 > 0.5 (the own integer step's bands, not the shape every profile shares); "
             "refuted if hi95 < 0.1 (no more alike than another prompt's); refined if lo95 > 0.1; else "
             "undecided",
             _decide_similar,
             (({"lo": 0.6, "hi": 0.8}, "confirmed"), ({"lo": -0.1, "hi": 0.05}, "refuted"),
              ({"lo": 0.2, "hi": 0.6}, "refined"), ({"lo": 0.0, "hi": 0.6}, "undecided"),
              ({"lo": NAN, "hi": NAN}, "undecided")),
             written=WRITTEN),
    ),
    Claim(
        "09.c", NAME, "(c) the isolated/visible divergence is written in by the same layers as a position "
                      "move",
        "notebook 04: the two modes' texts part at step 3", "texts part at step 3 (one prompt)",
        ("study:localisation.isolation_recovered", "notebook:09.isolation_entry"),
        _isolation_claim,
        Rule("the layers where the mean isolation recovery rises from 0.25 to 0.75, and those of (a) at the "
             "same far gap", "prompt", {},
             "confirmed if the two layer ranges overlap; refuted if they are disjoint; undecided if either "
             "never reaches 0.75",
             _decide_overlap,
             (({"overlap": 1.0}, "confirmed"), ({"overlap": 0.0}, "refuted"),
              ({"overlap": NAN}, "undecided")),
             written=WRITTEN),
    ),
    Claim(
        "09.d", NAME,
        "(d) the highest rotary frequencies build the previous-token heads; the lowest carry little position",
        "Barbero et al. (ICLR 2025), Gemma 7B", "Gemma 7B, long contexts",
        ("study:localisation.prev_drop", "study:localisation.prev_tv", "notebook:09.prev_drop_top_quarter"),
        _bands_claim,
        Rule("per prompt, each band group's share of the previous-token score drop when it loses its "
             "positions, and of the next-token TV", "prompt", {"top": 0.5, "low": 0.25},
             "confirmed if the top quarter's mean share interval lies above 0.5 and the lowest half's share "
             "of the next-token TV lies below 0.25; refuted if the top quarter's lies below 0.25; refined "
             "otherwise",
             _decide_bands,
             (({"top_lo": 0.7, "top_hi": 0.9, "low_tv_hi": 0.1}, "confirmed"),
              ({"top_lo": 0.7, "top_hi": 0.9, "low_tv_hi": 0.4}, "refined"),
              ({"top_lo": 0.05, "top_hi": 0.2, "low_tv_hi": 0.1}, "refuted"),
              ({"top_lo": NAN, "top_hi": NAN, "low_tv_hi": NAN}, "undecided")),
             written=WRITTEN),
        note="On prompts of a few words the lowest bands cannot act for geometric reasons: band i turns by "
        "theta ** (-2 i / d) radians per position, so over a T-token prompt the slowest band of SmolLM2 "
        "(theta = 100,000, d = 64) turns by about 1.4e-5 T radians; its angle hardly differs between any "
        "two positions of the prompt, with or without the move. Its small share says that, not that it "
        "carries no position in long contexts.",
    ),
)  # fmt: skip
