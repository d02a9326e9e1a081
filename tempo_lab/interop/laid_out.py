"""Layouts applied to whatever calls the model: a scoped pre-hook that sets each pass's positions and masks.

Libraries such as nnsight and TransformerLens's bridge call the wrapped transformers model themselves, and
build or rebuild its ``attention_mask`` and ``position_ids`` on the way (nnsight batches its invokes with a 2D
mask; a dict of per-layer-type masks does not survive its batching). :func:`laid_out` leaves their calls as
they are and sets the two arguments where the model receives them: a forward pre-hook (with keyword
arguments) on the model, registered for the block and removed on exit, also after an exception. Row ``i`` of
every pass is laid out by ``layouts[i]``: its positions and its mask (TEMPO sets, isolation), made into the
family's additive masks per layer type by :meth:`~tempo_lab.forward.DecodingCore.inputs`, as every
tempo_lab pass is.

Contents: :func:`laid_out`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import Cache

from tempo_lab import masks
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel


@contextmanager
def laid_out(lm: LoadedModel | Any, *layouts: Layout) -> Iterator[None]:
    """Inside the block, every forward pass of ``lm.model`` (given a TransformerLens bridge from
    :func:`~tempo_lab.interop.bridge`: of the transformers model it calls) lays out batch row ``i`` by
    ``layouts[i]``, whoever makes the call.

    Layouts of different lengths are left-padded to the longest, as a tokenizer with ``padding_side="left"``
    pads their tokens: row ``i``'s tokens are the last ``layouts[i].n`` of ``input_ids`` ``(len(layouts),
    W)``, its padding slots see only themselves (their logits mean nothing) and no real slot sees them,
    sliding windows counted in real slots; whatever mask or positions the caller derived from the padding are
    replaced (a 2D padding mask that pads otherwise, e.g. on the right, is refused).

    Refused before anything runs: no layouts, a model that is neither a
    :class:`~tempo_lab.loaded.LoadedModel` nor a bridge (TransformerLens's ``HookedTransformer`` with the
    reason), a position the model cannot take; and at a pass: another batch size or width, or a pass that
    extends a cache (the layouts place whole sequences)."""
    lm = _loaded(lm)
    if not layouts:
        raise ValueError("give at least one layout: row i of each pass takes layouts[i]")
    for i, layout in enumerate(layouts):
        if not isinstance(layout, Layout) or layout.batch != 1 or layout.cached:
            if isinstance(layout, Layout):
                got = f"{layout.batch} rows over {layout.cached} cached slots"
            else:
                got = f"{type(layout).__name__} {layout!r}"
            raise ValueError(f"layouts[{i}] must be a Layout of one whole sequence (one row), got {got}")
    core = DecodingCore(lm)
    allowed, real = masks.left_padded([masks.to_bool(layout.full_mask(lm.dtype))[0, 0] for layout in layouts])
    rows, width = real.shape
    positions = torch.zeros(rows, width)
    for r, layout in enumerate(layouts):
        positions[r, width - layout.n :] = layout.positions[0]
        positions[r, : width - layout.n] = layout.positions[0, 0]  # padding: any position the model takes
    padded = Layout(positions, allowed[:, None])  # (rows, 1, W, W): checked here, before any pass
    ranks = real.long().cumsum(-1) - 1  # sliding windows count real slots only
    core.check_positions(positions)

    def hook(_module: nn.Module, args: tuple, kwargs: dict):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise ValueError("laid_out passes need input_ids (batch, tokens); this pass has none")
        if tuple(ids.shape) != (rows, width):
            raise ValueError(
                f"this pass has {ids.shape[0]} row(s) of {ids.shape[1]} tokens; the layouts lay out "
                f"{rows} row(s) of {width}"
            )
        given = kwargs.get("attention_mask")
        if isinstance(given, torch.Tensor) and given.dim() == 2 and not bool(given.bool().all()):
            if not torch.equal(given.bool().cpu(), real):
                raise ValueError(
                    "this pass pads its rows otherwise than the layouts (padding mask "
                    f"{given.long().tolist()}): laid_out left-pads row i to {width} slots, its tokens last"
                )
        cache = next((v for v in kwargs.values() if isinstance(v, Cache)), None)  # under any argument name
        if cache is not None and cache.get_seq_length() > 0:
            raise ValueError("laid_out places whole sequences: this pass extends a cache of earlier slots")
        inputs = core.inputs(ids, padded, None, ranks)
        return (), {**kwargs, "input_ids": ids, "position_ids": inputs["position_ids"],
                    "attention_mask": inputs["attention_mask"]}  # fmt: skip

    handle = lm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _loaded(lm: object) -> LoadedModel:
    """The :class:`~tempo_lab.loaded.LoadedModel` whose model :func:`laid_out` hooks: ``lm`` itself, or the
    transformers model a TransformerBridge calls; anything else refused with the reason."""
    if isinstance(lm, LoadedModel):
        return lm
    kind = type(lm).__name__
    if kind == "TransformerBridge":
        return LoadedModel(lm.original_model, lm.tokenizer, getattr(lm.cfg, "model_name", kind))
    if kind == "HookedTransformer":
        raise TypeError(
            "TransformerLens's legacy HookedTransformer takes no position_ids and no 4D mask: it derives "
            "every position from the token count inside its own rotary and positional-embedding modules, "
            "so a layout (gaps, fractional or shared positions, TEMPO sets) cannot be given to it. Use "
            "tempo_lab.interop.bridge(lm), a TransformerBridge over the transformers model, and "
            "laid_out(bridge, ...)"
        )
    if kind in ("TransformersModel", "LanguageModel"):
        raise TypeError(
            f"laid_out takes the LoadedModel the {kind} wraps (tempo_lab.load_model's result), not the {kind}"
        )
    raise TypeError(f"laid_out needs a tempo_lab LoadedModel (load_model's result) or a bridge, got {kind}")
