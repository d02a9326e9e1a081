"""Where position acts, over a prompt set (notebook 09's at-scale column): the study measurement, its
single-prompt twin, its figure and the claims it decides.

Per prompt (its greedy next token re-placed after it, as in the retroactive measurement), one row per
``measure`` x ``gap`` x ``index`` with a ``value``:

- ``effect`` (index -1): TV of the next-token distribution with the token at ``T + gap`` from gap 0, for the
  gaps :data:`HALF_STEPS` and the two largest of ``Conditions.retro_gaps``;
- ``recovered`` (index: layer; the two largest gaps): the share of that TV restored by the gap-0 residual
  stream after the layer, at the token's slot (activation patching; NaN when the TV is under
  :data:`MIN_EFFECT`);
- ``band_tv`` (index: band group): the TV when only that group of rotary bands sees the gap (the bands in
  :data:`N_GROUPS` consecutive groups, group 0 the highest frequencies);
- ``isolation_effect`` / ``isolation_recovered`` (gap 0): the prompt's three most probable next tokens fed as
  one TEMPO set, isolated against visible: the TV at the set's last member, and the share each layer's
  visible residual stream restores there;
- ``prev_heads`` (index -1), ``prev_drop`` / ``prev_tv`` (index: band group; gap 0): how many heads pass the
  previous-token rule on the prompt, how far their score falls when one band group loses its positions, and
  the TV of the next-token distribution then (:func:`~tempo_lab.phenomena.localisation.probe.collapse_bands`).

:func:`measure` runs every part as cached steps on one prefill of the prompt (patched sites and band groups
as batch rows); :func:`single_rows` computes the same rows through the uncached paths (:func:`patch`,
full forwards under :func:`intervene`), the independent path the tests compare it with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from tempo_lab import masks, plots
from tempo_lab import positions as pos
from tempo_lab.capture import capture_attention
from tempo_lab.generators import DecodingCore, branch
from tempo_lab.interventions import Layout, PositionEdit, Site, intervene, patch, rotary_of, tv_to
from tempo_lab.interventions.patching import SiteModules, patched, record
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.localisation.probe import (
    ENTRY,
    PREVIOUS_TOKEN_RULE,
    band_groups,
    collapse_bands,
    entry_layers,
    previous_token_scores,
)
from tempo_lab.studies.claims import Claim, Evidence, ci, fmt_ci
from tempo_lab.studies.conditions import Batch, Conditions
from tempo_lab.studies.plots import n_prompts

NAME = "localisation"
HALF_STEPS = (0.5, 1.0)  # the half step of notebook 02 and the integer step it is compared with
N_GROUPS = 8  # rotary bands in this many groups (SmolLM2: 32 bands, 4 per group)
SET_SIZE = 3  # the TEMPO set of the isolation part: the prompt's three most probable next tokens
MIN_EFFECT = 1e-3  # a TV below this is not localised (its recovered shares are NaN)


def gaps(cond: Conditions) -> list[float]:
    """The gaps the measurement moves the token by: the half steps and the two largest retroactive gaps."""
    return [*HALF_STEPS, *far_gaps(cond)]


def far_gaps(cond: Conditions) -> list[float]:
    """The gaps whose effect is localised per layer: the two largest retroactive gaps."""
    return [float(g) for g in cond.retro_gaps[-2:] if g not in HALF_STEPS]


def _share(effect: float, patched_tv: float) -> float:
    """The share of ``effect`` (a TV) a patch restores; NaN for an effect under :data:`MIN_EFFECT`, whose
    shares are rounding noise."""
    return (effect - patched_tv) / effect if effect >= MIN_EFFECT else float("nan")


def _tv(probs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return 0.5 * (probs - reference).abs().sum(-1)


def _row(i: int, measure: str, gap: float, index: int, value: float) -> dict:
    return {"prompt": i, "measure": measure, "gap": float(gap), "index": int(index), "value": float(value)}


def _groups(lm: LoadedModel) -> list[list[int]]:
    return band_groups(rotary_of(lm).n_bands(), N_GROUPS)


def _prompt_rows(
    lm: LoadedModel, core: DecodingCore, where: SiteModules, i: int, ids: torch.Tensor, cond: Conditions
) -> list[dict]:
    """Every row of one prompt, as cached steps on one prefill (see the module docstring)."""
    t, moves, groups = ids.shape[1], gaps(cond), _groups(lm)
    n_layers = len(where.layers)
    prefix = core.prefill(ids)
    token = int(prefix.next_logits.argmax())
    rows: list[dict] = []

    def step(n_rows: int, positions: list[float]) -> torch.Tensor:
        tokens = torch.full((n_rows, 1), token, device=ids.device)
        places = torch.tensor(positions, dtype=torch.float32)[:, None]
        return torch.softmax(core.step(branch(prefix.cache, n_rows), tokens, places)[:, 0].float(), -1)

    # the token at gap 0 and at every gap, its residual stream kept
    store, handles = record(where, ["resid"])
    try:
        probs = step(1 + len(moves), [float(t), *(t + g for g in moves)])
    finally:
        for h in handles:
            h.remove()
    effects = _tv(probs[1:], probs[0])
    # every layer's gap-0 residual stream written into the runs at the far gaps
    far = far_gaps(cond)
    sites = [Site("resid", layer, t) for _ in far for layer in range(n_layers)]
    with patched(where, sites, store, t, source_row=0, source_offset=t):
        restored = step(len(sites), [t + g for g in far for _ in range(n_layers)])
    restored_tv = dict(zip(far, _tv(restored, probs[0]).reshape(len(far), n_layers), strict=True))
    # one band group at a time sees the gap
    edits = []
    for k, g in enumerate(moves):
        for j, bands in enumerate(groups):
            shift = torch.zeros(len(moves) * len(groups), t + 1)
            shift[k * len(groups) + j, t] = g
            edits.append(PositionEdit(shift, bands=bands))
    with intervene(lm, *edits):
        banded = _tv(step(len(edits), [float(t)] * len(edits)), probs[0]).reshape(len(moves), len(groups))
    for k, g in enumerate(moves):
        rows.append(_row(i, "effect", g, -1, effects[k]))
        for layer in range(n_layers) if g in restored_tv else ():
            patched_tv = restored_tv[g][layer]
            recovered = _share(float(effects[k]), float(patched_tv))
            rows.append(_row(i, "recovered", g, layer, recovered))
        rows += [_row(i, "band_tv", g, j, banded[k, j]) for j in range(len(groups))]
    rows += _isolation_rows(lm, core, where, i, ids, prefix)
    if t >= 3:
        collapsed = collapse_bands(lm, ids, groups)
        rows.append(_row(i, "prev_heads", 0.0, -1, len(collapsed.heads)))
        for r in collapsed.frame.itertuples():
            rows += [_row(i, "prev_drop", 0.0, r.group, r.score_drop), _row(i, "prev_tv", 0.0, r.group, r.tv)]
    return rows


def _set(
    ids: torch.Tensor, next_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The prompt and its top-:data:`SET_SIZE` next tokens as one set: ``(members (1, S), positions (1, S),
    {mode: mask (1, 1, S, T + S)})``."""
    t = ids.shape[1]
    members = next_logits.topk(SET_SIZE).indices[None].to(ids.device)
    labels = masks.set_labels([SET_SIZE], t)
    modes = {m: masks.parallel_mask(labels, m, SET_SIZE) for m in ("visible", "isolated")}
    return members, pos.shared(t, [SET_SIZE]), modes


def _isolation_rows(lm, core, where, i, ids, prefix) -> list[dict]:
    t, n_layers = ids.shape[1], len(where.layers)
    members, places, modes = _set(ids, prefix.next_logits)
    last = t + SET_SIZE - 1
    store, handles = record(where, ["resid"])
    try:
        both = torch.cat([modes["visible"], modes["isolated"]])
        logits = core.step(branch(prefix.cache, 2), members.expand(2, -1), places.expand(2, -1), both)
    finally:
        for h in handles:
            h.remove()
    probs = torch.softmax(logits[:, -1].float(), -1)
    effect = float(_tv(probs[1], probs[0]))
    sites = [Site("resid", layer, last) for layer in range(n_layers)]
    with patched(where, sites, store, t, source_row=0, source_offset=t):
        restored = core.step(
            branch(prefix.cache, n_layers),
            members.expand(n_layers, -1),
            places.expand(n_layers, -1),
            modes["isolated"],
        )
    restored_tv = _tv(torch.softmax(restored[:, -1].float(), -1), probs[0])
    rows = [_row(i, "isolation_effect", 0.0, -1, effect)]
    for layer in range(n_layers):
        value = _share(effect, float(restored_tv[layer]))
        rows.append(_row(i, "isolation_recovered", 0.0, layer, value))
    return rows


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """The rows of every prompt of ``batch`` (see the module docstring): one prefill per prompt, then cached
    steps whose batch rows are the patched layers and the band groups."""
    core, where = DecodingCore(lm), SiteModules.of(lm)
    return [row for i, ids in batch for row in _prompt_rows(lm, core, where, i, ids, cond)]


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` through the uncached paths: :func:`patch` over two
    layouts, and one full forward per band group under :func:`intervene`."""
    core, groups = DecodingCore(lm), _groups(lm)
    t = ids.shape[1]
    token = int(core.full(ids, pos.contiguous(t))[0, -1].argmax())
    full = torch.cat([ids, torch.tensor([[token]], device=ids.device)], 1)
    clean = Layout.contiguous(t + 1)
    reference = torch.softmax(core.full(full, clean.positions)[0, -1].float(), -1)
    rows: list[dict] = []
    for g in gaps(cond):
        corrupt = Layout(pos.with_gap(t, 1, g))
        layers = None if g in far_gaps(cond) else []  # per layer at the far gaps only
        result = patch(lm, full, clean, corrupt, tv_to(reference), slots=[t], layers=layers)
        rows.append(_row(i, "effect", g, -1, result.base))
        rows += [
            _row(i, "recovered", g, r.layer, _share(result.base, r.metric)) for r in result.frame.itertuples()
        ]
        for j, bands in enumerate(groups):
            shift = torch.zeros(t + 1)
            shift[t] = g
            with intervene(lm, PositionEdit(shift, bands=bands)):
                probs = torch.softmax(core.full(full, clean.positions)[0, -1].float(), -1)
            rows.append(_row(i, "band_tv", g, j, _tv(probs, reference)))
    members, places, modes = _set(ids, core.full(ids, pos.contiguous(t))[0, -1])
    both = torch.cat([ids, members], 1)
    prompt_rows = masks.causal_mask(t + SET_SIZE)[:, :, :t]  # the prompt's queries see the prompt only
    layouts = {
        m: Layout(torch.cat([pos.contiguous(t), places], 1), torch.cat([prompt_rows, mask], 2), m)
        for m, mask in modes.items()
    }
    visible = torch.softmax(core.full(both, layouts["visible"].positions, layouts["visible"].mask)[0, -1], -1)
    result = patch(
        lm, both, layouts["visible"], layouts["isolated"], tv_to(visible), slots=[t + SET_SIZE - 1]
    )
    rows.append(_row(i, "isolation_effect", 0.0, -1, result.base))
    rows += [
        _row(i, "isolation_recovered", 0.0, r.layer, _share(result.base, r.metric))
        for r in result.frame.itertuples()
    ]
    if t >= 3:
        rows += _single_collapse(lm, core, i, ids, groups)
    return rows


def _single_collapse(lm, core, i, ids, groups) -> list[dict]:
    """The previous-token rows, one full forward per band group."""
    t = ids.shape[1]
    positions = pos.contiguous(t)

    def run(edit: PositionEdit | None) -> tuple[torch.Tensor, torch.Tensor]:
        with intervene(lm, *([edit] if edit else [])), capture_attention(lm.model) as rec:
            logits = core.full(ids, positions)
        scores = previous_token_scores(rec.stacked(-1, width=t).float()[:, 0])  # (layers, heads)
        return scores, torch.softmax(logits[0, -1].float(), -1)

    base, probs = run(None)
    heads = (base >= PREVIOUS_TOKEN_RULE).nonzero().tolist()
    rows = [_row(i, "prev_heads", 0.0, -1, len(heads))]
    for j, bands in enumerate(groups):
        scores, moved = run(PositionEdit(positions[0, -1] - positions[0], bands=bands))
        drop = float(np.mean([float(base[a, b] - scores[a, b]) for a, b in heads])) if heads else float("nan")
        rows += [_row(i, "prev_drop", 0.0, j, drop), _row(i, "prev_tv", 0.0, j, _tv(moved, probs))]
    return rows


# --- over the stored study ---


def curve(table: pd.DataFrame, measure_: str, gap: float | None = None) -> pd.DataFrame:
    """Per ``index`` (layer or band group), the mean ``value`` over prompts with its 95% bootstrap interval:
    ``index, mean, lo, hi, n``."""
    rows = table[table.measure == measure_]
    if gap is not None:
        rows = rows[np.isclose(rows.gap, gap)]
    out = []
    for index, part in rows.groupby("index"):
        mean, lo, hi = ci(part.value.dropna())
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


def figure(table: pd.DataFrame) -> Figure:
    """The at-scale localisation: recovery per layer for each gap and for isolation, the band-group TV shares
    per gap, and the previous-token score drop against the next-token TV per band group (95% CIs)."""
    fig = plots.figure(13, 3.8)
    left, middle, right = fig.subplots(1, 3)
    for g in sorted(table[table.measure == "recovered"].gap.unique()):
        c = curve(table, "recovered", g)
        left.plot(c["index"], c["mean"], marker=".", ms=3, label=f"gap {g:g}")
        left.fill_between(c["index"], c["lo"], c["hi"], alpha=0.2)
    c = curve(table, "isolation_recovered")
    left.plot(c["index"], c["mean"], "k--", lw=1, label="isolated vs visible")
    left.set(
        xlabel="layer (residual stream patched after it)",
        ylabel="share of the TV restored",
        title="Where the effect is written in",
    )
    left.legend(fontsize=7)
    for g in sorted(table[table.measure == "band_tv"].gap.unique()):
        s = shares(table, "band_tv", g)
        middle.plot(s.columns, s.mean(), marker="o", ms=3, label=f"gap {g:g}")
    middle.set(
        xlabel="band group (0 = highest frequencies)",
        ylabel="share of the band TVs",
        title="Which bands carry the move",
    )
    middle.legend(fontsize=7)
    for name, colour, label in (
        ("prev_drop", "C3", "previous-token score drop"),
        ("prev_tv", "C0", "next-token TV"),
    ):
        s = shares(table, name)
        right.plot(s.columns, s.mean(), marker="o", ms=3, color=colour, label=label)
    right.set(
        xlabel="band group without positions (0 = highest)",
        ylabel="share over the groups",
        title="Previous-token heads vs the prediction",
    )
    right.legend(fontsize=7)
    fig.suptitle(f"Where position acts, over {n_prompts(table)} prompts (95% CI)")
    return fig


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
