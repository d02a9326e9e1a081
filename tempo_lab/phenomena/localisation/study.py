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
full forwards under :func:`intervene`), the independent path the tests compare it with. What the stored rows
say (curves, shares, the figure, the claims) is :mod:`tempo_lab.phenomena.localisation.summary`.
"""

from __future__ import annotations

import numpy as np
import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.interventions import PositionEdit, Site, intervene, patch, rotary_of, tv_to
from tempo_lab.interventions.sites import SiteModules, patched, record
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.phenomena.localisation.probe import (
    PREVIOUS_TOKEN_RULE,
    band_groups,
    collapse_bands,
    previous_token_scores,
)

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
        logits = core.step(branch(prefix.cache, n_rows), tokens, Layout(places))
        return torch.softmax(widened(logits[:, 0]), -1)

    # the token at gap 0 and at every gap, its residual stream kept
    with record(where, ["resid"]) as store:
        probs = step(1 + len(moves), [float(t), *(t + g for g in moves)])
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
    with record(where, ["resid"]) as store:
        both = torch.cat([modes["visible"], modes["isolated"]])
        logits = core.step(branch(prefix.cache, 2), members.expand(2, -1), Layout(places.expand(2, -1), both))
    probs = torch.softmax(widened(logits[:, -1]), -1)
    effect = float(_tv(probs[1], probs[0]))
    sites = [Site("resid", layer, last) for layer in range(n_layers)]
    with patched(where, sites, store, t, source_row=0, source_offset=t):
        restored = core.step(
            branch(prefix.cache, n_layers),
            members.expand(n_layers, -1),
            Layout(places.expand(n_layers, -1), modes["isolated"]),
        )
    restored_tv = _tv(torch.softmax(widened(restored[:, -1]), -1), probs[0])
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
    token = int(core.full(ids)[0, -1].argmax())
    full = torch.cat([ids, torch.tensor([[token]], device=ids.device)], 1)
    clean = Layout.contiguous(t + 1)
    reference = torch.softmax(widened(core.full(full, clean)[0, -1]), -1)
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
                probs = torch.softmax(widened(core.full(full, clean)[0, -1]), -1)
            rows.append(_row(i, "band_tv", g, j, _tv(probs, reference)))
    members, places, modes = _set(ids, core.full(ids)[0, -1])
    both = torch.cat([ids, members], 1)
    prompt_rows = masks.causal_mask(t + SET_SIZE)[:, :, :t]  # the prompt's queries see the prompt only
    layouts = {
        m: Layout(torch.cat([pos.contiguous(t), places], 1), torch.cat([prompt_rows, mask], 2), m)
        for m, mask in modes.items()
    }
    visible = torch.softmax(core.full(both, layouts["visible"])[0, -1], -1)
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
            logits = core.full(ids)
        scores = previous_token_scores(widened(rec.stacked(-1, width=t))[:, 0])  # (layers, heads)
        return scores, torch.softmax(widened(logits[0, -1]), -1)

    base, probs = run(None)
    heads = (base >= PREVIOUS_TOKEN_RULE).nonzero().tolist()
    rows = [_row(i, "prev_heads", 0.0, -1, len(heads))]
    for j, bands in enumerate(groups):
        scores, moved = run(PositionEdit(positions[0, -1] - positions[0], bands=bands))
        drop = float(np.mean([float(base[a, b] - scores[a, b]) for a, b in heads])) if heads else float("nan")
        rows += [_row(i, "prev_drop", 0.0, j, drop), _row(i, "prev_tv", 0.0, j, _tv(moved, probs))]
    return rows
