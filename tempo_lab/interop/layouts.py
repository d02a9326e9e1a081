"""Layouts applied to whatever calls the model: a scoped pre-hook that sets each pass's positions and masks.

Libraries such as nnsight and TransformerLens's bridge call the wrapped transformers model themselves, and
build or rebuild its ``attention_mask`` and ``position_ids`` on the way (nnsight batches its invokes with a 2D
mask; a dict of per-layer-type masks does not survive its batching). :func:`laid_out` leaves their calls as
they are and sets the two arguments where the model receives them: a forward pre-hook (with keyword
arguments) on the model, registered for the block and removed on exit, also after an exception. Row ``i`` of
every pass is laid out by ``layouts[i]``: its positions and its mask (TEMPO sets, isolation), made into the
family's additive masks per layer type by :meth:`~tempo_lab.generators.core.DecodingCore.inputs`, as every
tempo_lab pass is.

Contents: :func:`laid_out`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from tempo_lab.generators.core import DecodingCore
from tempo_lab.interventions.layouts import Layout
from tempo_lab.loaded import LoadedModel


@contextmanager
def laid_out(lm: LoadedModel, *layouts: Layout) -> Iterator[None]:
    """Inside the block, every forward pass of ``lm.model`` lays out batch row ``i`` by ``layouts[i]``
    (``input_ids`` ``(len(layouts), N)``, whoever makes the call). Refused before anything runs: no layouts,
    layouts of different lengths, a position the model cannot take; and at a pass: another batch size or
    length, or a pass that extends a cache (the layouts place whole sequences)."""
    if not layouts:
        raise ValueError("give at least one layout: row i of each pass takes layouts[i]")
    n = layouts[0].n
    lengths = [layout.n for layout in layouts]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"the layouts place sequences of different lengths {lengths}: one pass has one length"
        )
    core = DecodingCore(lm)
    positions = torch.cat([layout.positions for layout in layouts])  # (rows, N)
    mask = torch.cat([layout.full_mask(lm.dtype) for layout in layouts])  # (rows, 1, N, N)
    core.check_positions(positions)

    def hook(_module: nn.Module, args: tuple, kwargs: dict):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise ValueError("laid_out passes need input_ids (batch, tokens); this pass has none")
        if tuple(ids.shape) != (len(layouts), n):
            raise ValueError(
                f"this pass has {ids.shape[0]} row(s) of {ids.shape[1]} tokens; the layouts lay out "
                f"{len(layouts)} row(s) of {n}"
            )
        cache = kwargs.get("cache")
        if cache is not None and cache.get_seq_length() > 0:
            raise ValueError("laid_out places whole sequences: this pass extends a cache of earlier slots")
        inputs = core.inputs(ids, positions, mask, None)
        return (), {**kwargs, "input_ids": ids, "position_ids": inputs["position_ids"],
                    "attention_mask": inputs["attention_mask"]}  # fmt: skip

    handle = lm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
