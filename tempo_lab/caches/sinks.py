"""Attention sinks and massive activations: what makes a rolling window work (Xiao et al. 2024; Gu et al.
2025, "When attention sink emerges"; Sun et al. 2024, "Massive activations").

    sink_mass(lm, ids)                  # (layers, heads): the last token's attention on the first token(s)
    massive_activations(lm, ids)        # residual-stream entries far above the median: layer, slot, dim
    sink_ablation(lm, ids, "zero")      # the next-token TV when the sink's massive entries are zeroed
    sink_ablation(lm, ids, "mean", means=massive_means(many))   # set to their mean over many prompts
    sink_ablation(lm, ids, "remove")    # the first token masked out of every query's view
    sink_ablation(lm, ids, "move")      # the first token at the position of the token before the last
    sink_ablation(lm, ids, "zero", dims=[507])   # Sun et al.'s single dimension
    with ablated(lm, ids, "zero"):      # any measurement with the sink's massive entries zeroed
        sink_mass(lm, ids)

Every pass is the shared forward (:class:`~tempo_lab.forward.DecodingCore`), so sliding windows and every
check hold as for any other tempo_lab number. The residual stream is each decoder layer's output (a forward
hook on the layers the family table names reads it; an ablation's hook replaces it for the block, and is
removed on exit). Sun et al. report that zeroing the massive activations breaks the
model while setting them to their mean (over many sequences: the massive values are nearly constant, so the
mean is itself massive) does not; :func:`sink_ablation` measures both on any model, the means from
:func:`massive_means` of :func:`massive_activations` over a prompt set.

Contents: :func:`sink_mass`, :func:`massive_activations`, :func:`massive_means`, :func:`ablated`,
:func:`sink_ablation`, :data:`ABLATIONS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import torch
from torch import nn

from tempo_lab import positions as pos
from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks

ABLATIONS = ("zero", "mean", "remove", "move")


def _layers(lm: LoadedModel) -> list[nn.Module]:
    return lm.family.modules(lm.model).layers


def _ids(lm: LoadedModel, ids: object, least: int = 2) -> torch.Tensor:
    """``ids`` if they are one text of token ids ``(1, n)``, ``n >= least`` (``ValueError`` naming them)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < least:
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be one text of token ids, shape (1, n) with n >= {least}; got {got}")
    return ids


def _forward(lm: LoadedModel, ids: torch.Tensor, layout: Layout | None = None) -> torch.Tensor:
    """The last slot's next-token probabilities ``(vocab,)`` under ``layout`` (contiguous by default)."""
    layout = Layout.contiguous(ids.shape[1]) if layout is None else layout
    logits = DecodingCore(lm).forward(ids, layout, last=True)
    return torch.softmax(widened(logits[0, -1]), -1).cpu()


def sink_mass(lm: LoadedModel, ids: torch.Tensor, sinks: int = 1) -> torch.Tensor:
    """``(layers, heads)``: the attention the last token of ``ids`` ``(1, n)`` pays to the first ``sinks``
    slots, per layer and head (only that query row is captured)."""
    n = _ids(lm, ids).shape[1]
    sinks = checks.integer_in("sinks", sinks, 1, n - 1)
    rows = [-1] if lm.family.takes_own_attention() else None  # the last row alone, where it can be computed
    with capture_attention(lm.model, queries=rows) as rec:
        DecodingCore(lm).forward(ids, Layout.contiguous(n), last=True)
    return widened(rec.stacked()[:, 0, :, -1, :sinks].sum(-1))


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
    ids = _ids(lm, ids, least=1)
    with _residuals(lm) as seen:
        _forward(lm, ids)
    rows = []
    for layer, h in enumerate(seen):
        magnitude = widened(h[0]).abs()  # (n, hidden)
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


def _entries(
    found: pd.DataFrame,
    mode: str,
    slot: int,
    means: dict[tuple[int, int], float] | None,
    dims: Sequence[int] | None,
) -> dict[int, dict[int, float]]:
    """``{layer: {dim: value}}``: the massive entries at ``slot`` an ablation sets, and what to."""
    targets = found[found.slot == slot]
    if dims is not None:
        targets = targets[targets.dim.isin(list(dims))]
    by_layer: dict[int, dict[int, float]] = {}
    for layer, dim in zip(targets.layer, targets.dim, strict=True):
        key = (int(layer), int(dim))
        if mode == "zero" or key in (means or {}):
            by_layer.setdefault(key[0], {})[key[1]] = 0.0 if mode == "zero" else means[key]
    return by_layer


@contextmanager
def ablated(
    lm: LoadedModel,
    ids: torch.Tensor,
    mode: str = "zero",
    found: pd.DataFrame | None = None,
    slot: int = 0,
    means: dict[tuple[int, int], float] | None = None,
    dims: Sequence[int] | None = None,
) -> Iterator[int]:
    """Inside the block every pass of ``lm`` has the sink's massive entries at ``slot`` (``found``, default
    :func:`massive_activations` of ``ids``) set to 0 (``"zero"``) or to ``means[(layer, dim)]`` (``"mean"``)
    in each layer's output; ``dims``: only those dimensions (Sun et al.'s single dimension). Yields how many
    entries it sets; the hooks are removed on exit."""
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode must be 'zero' or 'mean' to set activations, got {mode!r}")
    if mode == "mean" and means is None:
        raise ValueError(
            "mode 'mean' sets each massive entry to its mean over many prompts: give means={(layer, dim): "
            "value} (caches.massive_means of their massive_activations)"
        )
    found = massive_activations(lm, ids) if found is None else found
    by_layer = _entries(found, mode, slot, means, dims)

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
        yield sum(len(v) for v in by_layer.values())
    finally:
        for h in handles:
            h.remove()


def sink_ablation(
    lm: LoadedModel,
    ids: torch.Tensor,
    mode: str,
    found: pd.DataFrame | None = None,
    slot: int = 0,
    means: dict[tuple[int, int], float] | None = None,
    to: int | None = None,
    dims: Sequence[int] | None = None,
) -> float:
    """The total variation between the last token's next-token distribution with and without the ablation
    ``mode`` of the sink at ``slot``: ``"zero"`` sets its massive entries (``found``, default
    :func:`massive_activations` of ``ids`` at that slot; ``dims``: only those dimensions) in each layer's
    output to 0, ``"mean"`` to ``means[(layer, dim)]`` (:func:`massive_means`; entries without a mean are
    left alone) (both through :func:`ablated`); ``"remove"`` masks the slot out of every other query's view;
    ``"move"`` gives it position ``to`` in every layer (an integer, default ``n - 2``: beside the last token,
    which then sees it from one position away instead of ``n - 1 - slot``)."""
    if mode not in ABLATIONS:
        raise ValueError(f"mode must be one of {', '.join(ABLATIONS)}, got {mode!r}")
    n = _ids(lm, ids).shape[1]
    slot = checks.integer_in("slot (not the last token)", slot, 0, n - 2)
    if mode == "move":
        top = (lm.max_positions or n) - 1
        to = checks.integer_in("to", n - 2 if to is None else to, 0, top)
    if mode == "mean" and means is None:
        raise ValueError(
            "mode 'mean' sets each massive entry to its mean over many prompts: give means={(layer, dim): "
            "value} (caches.massive_means of their massive_activations)"
        )
    base = _forward(lm, ids)
    if mode == "move":  # out of order: a layout whose positions may decrease
        where = torch.arange(n, dtype=torch.float32)[None]
        where[0, slot] = float(to)
        moved = _forward(lm, ids, Layout(where, any_order=True))
        return float(0.5 * (moved - base).abs().sum())
    if mode == "remove":
        allowed = torch.ones(n, n, dtype=torch.bool).tril()
        allowed[slot + 1 :, slot] = False
        removed = _forward(lm, ids, Layout(pos.contiguous(n), allowed[None, None]))
        return float(0.5 * (removed - base).abs().sum())
    with ablated(lm, ids, mode, found, slot, means, dims):
        changed = _forward(lm, ids)
    return float(0.5 * (changed - base).abs().sum())
