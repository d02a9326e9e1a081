"""Attention sinks and massive activations: what makes a rolling window work (Xiao et al. 2024; Gu et al.
2025, "When attention sink emerges"; Sun et al. 2024, "Massive activations").

    sink_mass(lm, ids)                  # (layers, heads): the last token's attention on the first token(s)
    massive_activations(lm, ids)        # residual-stream entries far above the median: layer, slot, dim
    sink_ablation(lm, ids, "zero")      # the next-token TV when the sink's massive entries are zeroed
    sink_ablation(lm, ids, "mean", means=massive_means(many))   # set to their mean over many prompts
    sink_ablation(lm, ids, "remove")    # the first token masked out of every query's view
    sink_ablation(lm, ids, "move")      # the first token at the position of the token before the last

The residual stream is each decoder layer's output (a forward hook reads it; an ablation's hook replaces it
for the block, and is removed on exit). Sun et al. report that zeroing the massive activations breaks the
model while setting them to their mean (over many sequences: the massive values are nearly constant, so the
mean is itself massive) does not; :func:`sink_ablation` measures both on any model, the means from
:func:`massive_means` of :func:`massive_activations` over a prompt set.

Contents: :func:`sink_mass`, :func:`massive_activations`, :func:`massive_means`, :func:`sink_ablation`,
:data:`ABLATIONS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import torch
from torch import nn

from tempo_lab import capture_attention, masks
from tempo_lab.generators import DecodingCore
from tempo_lab.loaded import LoadedModel, evaluating

ABLATIONS = ("zero", "mean", "remove", "move")


def _layers(lm: LoadedModel) -> list[nn.Module]:
    return list(lm.model.base_model.layers)


def _forward(lm: LoadedModel, ids: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """The last slot's next-token probabilities ``(vocab,)`` (``allowed``: a bool ``(1, 1, n, n)`` mask)."""
    n = ids.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None, None] if allowed is None else allowed
    where = torch.arange(n, dtype=torch.float32)[None]
    logits = DecodingCore(lm).forward(ids, where, allowed, None, last=True)
    return torch.softmax(logits[0, -1].float(), -1).cpu()


def sink_mass(lm: LoadedModel, ids: torch.Tensor, sinks: int = 1) -> torch.Tensor:
    """``(layers, heads)``: the attention the last token of ``ids`` ``(1, n)`` pays to the first ``sinks``
    slots, per layer and head (only that query row is captured)."""
    n = ids.shape[1]
    if isinstance(sinks, bool) or not isinstance(sinks, int) or not 1 <= sinks < n:
        raise ValueError(f"sinks must be an integer in 1..{n - 1} (the text has {n} tokens), got {sinks!r}")
    mask = masks.causal_mask(n, dtype=lm.dtype)
    with capture_attention(lm.model, queries=[-1]) as rec, torch.no_grad():
        lm.model(ids, position_ids=torch.arange(n)[None], attention_mask=mask)
    return rec.stacked()[:, 0, :, 0, :sinks].sum(-1).float()


@contextmanager
def _residuals(lm: LoadedModel) -> Iterator[list[torch.Tensor]]:
    """Each decoder layer's output ``(1, n, hidden)`` of the forward passes inside the block, in order."""
    seen: list[torch.Tensor] = []

    def keep(_module: nn.Module, _args: tuple, output) -> None:
        seen.append((output[0] if isinstance(output, tuple) else output).detach())

    handles = [layer.register_forward_hook(keep) for layer in _layers(lm)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def massive_activations(lm: LoadedModel, ids: torch.Tensor, ratio: float = 100.0) -> pd.DataFrame:
    """Residual-stream entries whose magnitude is at least ``ratio`` times the median magnitude of their
    layer's output, one row each: ``layer``, ``slot``, ``token``, ``dim``, ``value``, ``ratio`` (to that
    median), largest first."""
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1 (how many times the median), got {ratio!r}")
    with _residuals(lm) as seen, torch.no_grad():
        _forward(lm, ids)
    rows = []
    for layer, h in enumerate(seen):
        magnitude = h[0].float().abs()  # (n, hidden)
        median = float(magnitude.median())
        for slot, dim in (magnitude >= ratio * median).nonzero().tolist():
            value = float(h[0, slot, dim])
            rows.append({"layer": layer, "slot": slot, "token": lm.token_str(int(ids[0, slot])), "dim": dim,
                         "value": value, "ratio": abs(value) / median})  # fmt: skip
    columns = ["layer", "slot", "token", "dim", "value", "ratio"]
    return pd.DataFrame(rows, columns=columns).sort_values("ratio", ascending=False, ignore_index=True)


def massive_means(massive: pd.DataFrame, slot: int = 0) -> dict[tuple[int, int], float]:
    """``{(layer, dim): mean value}`` of the massive entries at ``slot`` in ``massive`` (rows of
    :func:`massive_activations`, e.g. of many prompts concatenated): what Sun et al.'s mean ablation sets
    each entry to."""
    if massive.empty:
        return {}
    at = massive[massive.slot == slot]
    return {
        (int(layer), int(dim)): float(v)
        for (layer, dim), v in at.groupby(["layer", "dim"]).value.mean().items()
    }


def sink_ablation(
    lm: LoadedModel,
    ids: torch.Tensor,
    mode: str,
    found: pd.DataFrame | None = None,
    slot: int = 0,
    means: dict[tuple[int, int], float] | None = None,
    to: int | None = None,
) -> float:
    """The total variation between the last token's next-token distribution with and without the ablation
    ``mode`` of the sink at ``slot``: ``"zero"`` sets its massive entries (``found``, default
    :func:`massive_activations` of ``ids`` at that slot) in each layer's output to 0, ``"mean"`` to
    ``means[(layer, dim)]`` (:func:`massive_means`; entries without a mean are left alone); ``"remove"``
    masks the slot out of every other query's view; ``"move"`` gives it position ``to`` in every layer (an
    integer, default ``n - 2``: beside the last token, which then sees it from one position away instead of
    ``n - 1 - slot``)."""
    if mode not in ABLATIONS:
        raise ValueError(f"mode must be one of {', '.join(ABLATIONS)}, got {mode!r}")
    if mode == "mean" and means is None:
        raise ValueError(
            "mode 'mean' sets each massive entry to its mean over many prompts: give means={(layer, dim): "
            "value} (caches.massive_means of their massive_activations)"
        )
    n = ids.shape[1]
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < n - 1:
        raise ValueError(f"slot must be an integer in 0..{n - 2} (not the last token), got {slot!r}")
    base = _forward(lm, ids)
    if mode == "move":  # out of order, which the decoding core refuses: the model called with the same mask
        where = torch.arange(n)[None]
        where[0, slot] = int(n - 2 if to is None else to)
        core = DecodingCore(lm)
        mask = core.family.layer_masks(masks.causal_mask(n, dtype=lm.dtype).to(lm.device))
        with torch.no_grad(), evaluating(lm.model):
            logits = lm.model(ids.to(lm.device), position_ids=where.to(lm.device), attention_mask=mask).logits
        moved = torch.softmax(logits[0, -1].float(), -1).cpu()
        return float(0.5 * (moved - base).abs().sum())
    if mode == "remove":
        allowed = torch.ones(n, n, dtype=torch.bool).tril()
        allowed[slot + 1 :, slot] = False
        return float(0.5 * (_forward(lm, ids, allowed[None, None]) - base).abs().sum())
    found = massive_activations(lm, ids) if found is None else found
    targets = found[found.slot == slot]
    by_layer: dict[int, dict[int, float]] = {}
    for layer, dim in zip(targets.layer, targets.dim, strict=True):
        key = (int(layer), int(dim))
        if mode == "zero" or key in means:
            by_layer.setdefault(key[0], {})[key[1]] = 0.0 if mode == "zero" else means[key]

    def hook_for(values: dict[int, float]):
        def hook(_module: nn.Module, _args: tuple, output):
            h = output[0] if isinstance(output, tuple) else output
            h = h.clone()
            index = torch.tensor(list(values), device=h.device)
            h[:, slot, index] = torch.tensor(list(values.values()), dtype=h.dtype, device=h.device)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    layers = _layers(lm)
    handles = [layers[layer].register_forward_hook(hook_for(values)) for layer, values in by_layer.items()]
    try:
        ablated = _forward(lm, ids)
    finally:
        for h in handles:
            h.remove()
    return float(0.5 * (ablated - base).abs().sum())
