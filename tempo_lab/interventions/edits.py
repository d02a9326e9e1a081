"""Position as an intervenable variable: chosen layers, rotary bands or heads see their slots moved.

    edit = PositionEdit(shift, layers=range(12, 30))       # the move seen only by layers 12..29
    edit = PositionEdit(shift, bands=range(0, 8))           # only by the 8 highest-frequency bands
    edit = PositionEdit(shift, layers=[3], heads=[5])       # only by head 5 of layer 3
    with intervene(lm, edit):
        ...                                                 # any forward pass: generators, sessions, studies

``shift`` holds, per slot of the sequence (slot 0 is the first prompt token), how far the chosen units see
that slot moved from the position the pass gives it; slots past its end are not moved. A forward pass over
slots ``o..o+q-1`` (``o``: the slots already in its cache) moves its queries by ``shift[..., o:o+q]``.

How, through public extension points only, all removed on exit (also after an exception):

- a forward pre-hook on the base model reads each pass's positions and its slot offset;
- **layers and bands**: a forward pre-hook (``with_kwargs``) on each chosen decoder layer moves the
  ``position_embeddings=(cos, sin)`` it receives by the shift, in the chosen bands' columns (the others keep
  theirs): the rotation by the shift, read off the model's own rotary embedding, is composed with the given
  one by angle addition, ``R(p + d) = R(d) R(p)``. Keys are written to the cache as they were rotated, so
  cached steps equal a full recompute under the same edit;
- **heads**: a registered attention function (transformers' ``AttentionInterface``) rotates the chosen heads'
  queries, and the keys of every slot they read, by one more rotation, ``R(p + d) = R(d) R(p)`` (exact). Under
  grouped-query attention the shared key heads are expanded to one per query head first, so a shift of one
  query head never reaches the others. The attention itself is the model's own eager attention.

Float shifts (fractional positions) work, and the edits are differentiable in ``shift`` and in the pass's
positions (:mod:`tempo_lab.interventions.attribution`). A model with learned position tables (GPT-2) has no
rotary units: :class:`~tempo_lab.interventions.rotary.Rotary` refuses it with the reason.

Contents: :class:`PositionEdit`, :func:`intervene`, :func:`moved`, :class:`CurrentPass` (the positions and
slot offset of the forward pass under way, read by a pre-hook: also what :mod:`tempo_lab.extension` scales).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tempo_lab.capture import register_eager
from tempo_lab.interventions.rotary import Rotary, check_indices
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks
from tempo_lab.plumbing.scoped import PerModule, attending

HEADS_ATTENTION = "tempo_lab_position_heads"


@dataclass(frozen=True)
class PositionEdit:
    """Which rotary units see the slots moved, and by how much (see the module docstring).

    ``shift``: ``(N,)`` or ``(batch, N)`` float, per slot. ``layers``: decoder layer indices (``None``: every
    layer); ``bands``: rotary band indices, 0 the highest frequency (``None``: every band); ``heads``: head
    indices within each chosen layer (``None``: every head). An empty selection moves nothing."""

    shift: torch.Tensor
    layers: Sequence[int] | None = None
    bands: Sequence[int] | None = None
    heads: Sequence[int] | None = None


def moved(n_slots: int, slots: int | Sequence[int], by: float | torch.Tensor, **where: Any) -> PositionEdit:
    """A :class:`PositionEdit` that moves ``slots`` (of a sequence of ``n_slots``) by ``by`` positions, for
    the units ``where`` names (``layers=``, ``bands=``, ``heads=``)."""
    n_slots = checks.count("n_slots", n_slots)
    chosen = [slots] if isinstance(slots, int) else checks.as_list(slots)
    for i, slot in enumerate(chosen):
        checks.integer_in(f"slots[{i}]" if not isinstance(slots, int) else "slots", slot, 0, n_slots - 1)
    shift = torch.zeros(n_slots, dtype=torch.float32)
    index = torch.as_tensor(chosen, dtype=torch.long)
    if isinstance(by, torch.Tensor):
        shift = shift.to(by.dtype).index_put((index,), by.expand(len(index)))
    else:
        shift[index] = float(by)
    return PositionEdit(shift, **where)


@dataclass
class CurrentPass:
    """The forward pass under way: its slot offset, its query count and the positions ``(batch or 1, q)`` it
    gives. :meth:`record` is a forward pre-hook (``with_kwargs=True``) for the base model."""

    offset: int = 0
    q: int = 0
    positions: torch.Tensor | None = None

    def record(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        cache = kwargs.get("cache")
        self.q = ids.shape[1]
        self.offset = cache.get_seq_length() if cache is not None else 0
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = torch.arange(self.offset, self.offset + self.q, device=ids.device)[None]
        self.positions = positions

    def shift(self, edit: PositionEdit, start: int, stop: int) -> torch.Tensor:
        """The edit's shift for slots ``start..stop-1``, ``(batch or 1, stop - start)``; zero past its end."""
        shift = edit.shift if edit.shift.dim() == 2 else edit.shift[None]
        shift = shift.to(self.positions.device)
        part = shift[:, start : min(stop, shift.shape[1])]
        if part.shape[1] < stop - start:
            part = torch.nn.functional.pad(part, (0, stop - start - part.shape[1]))
        return part


@dataclass
class _Heads:
    """The head edits of one attention module, for the registered attention function."""

    rotary: Rotary
    layer: int
    edits: list[PositionEdit]
    now: CurrentPass
    eager: Any = field(default=None)


_HEAD_EDITS: PerModule[_Heads] = PerModule("tempo_lab head edits")  # the open interventions' head edits
_PAUSED: ContextVar[bool] = ContextVar("tempo_lab edits paused", default=False)  # Rotary measuring layers


@contextmanager
def _paused() -> Iterator[None]:
    """Every open edit lets the passes inside through (in this context only)."""
    token = _PAUSED.set(True)
    try:
        yield
    finally:
        _PAUSED.reset(token)


class _OneKeyPerHead:
    """The attention module as the attention function sees it after the keys are expanded to one per query
    head: every attribute is the module's, except ``num_key_value_groups`` (now 1)."""

    num_key_value_groups = 1

    def __init__(self, module: nn.Module):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _heads_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """The registered attention function: move the chosen heads' queries and keys, then attend (eager)."""
    found = _HEAD_EDITS[module]
    if not found.edits or _PAUSED.get():
        return found.eager(module, query, key, value, attention_mask, **kwargs)
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)  # (batch, heads, K, head_dim): one key head per query head
    value = value.repeat_interleave(groups, dim=1)
    now, n_keys = found.now, key.shape[2]
    end = now.offset + now.q
    for edit in found.edits:
        heads = torch.zeros(query.shape[1], dtype=torch.bool, device=query.device)
        heads[list(edit.heads)] = True
        heads = heads[None, :, None, None]
        for states, start in ((query, now.offset), (key, end - n_keys)):
            cos, sin = found.rotary.delta(now.shift(edit, start, end), found.layer, edit.bands)
            rotated = found.rotary.rotate(states, cos, sin, found.layer)
            if states is query:
                query = torch.where(heads, rotated, query)
            else:
                key = torch.where(heads, rotated, key)
    return found.eager(_OneKeyPerHead(module), query, key, value, attention_mask, **kwargs)


register_eager(HEADS_ATTENTION, _heads_attention)  # eager's masks; a capture inside keeps its probabilities


def _check(edit: PositionEdit, rotary: Rotary) -> PositionEdit:
    """The edit with its selections as lists, every index checked (``ValueError`` naming the bad one)."""
    shift = edit.shift
    if not isinstance(shift, torch.Tensor) or shift.dim() not in (1, 2) or not shift.is_floating_point():
        raise ValueError(f"shift must be a float tensor of shape (N,) or (batch, N), got {shift!r}")
    if not torch.isfinite(shift.detach()).all():
        raise ValueError("shift holds a NaN or infinite value; give finite position offsets")
    # an empty selection stays empty: no unit sees the move
    return PositionEdit(
        shift,
        None if edit.layers is None else check_indices("layers", edit.layers, rotary.n_layers, "layers"),
        None if edit.bands is None else rotary.check_bands(list(edit.bands)),
        None if edit.heads is None else check_indices("heads", edit.heads, rotary.n_heads, "heads per layer"),
    )


def _layer_hook(rotary: Rotary, layer: int, edits: list[PositionEdit], now: CurrentPass):
    """The pre-hook of one decoder layer: its ``position_embeddings`` moved by each edit's shift in the
    edit's bands, by the angle-addition rule (``R(p + d) = R(d) R(p)``; in float32)."""

    def hook(_module: nn.Module, args: tuple, kwargs: dict):
        if _PAUSED.get():
            return None
        cos, sin = kwargs["position_embeddings"]
        c, s = cos.float(), sin.float()
        for edit in edits:
            dc, ds = rotary.delta(now.shift(edit, now.offset, now.offset + now.q), layer, edit.bands)
            dc, ds = dc.to(c.device), ds.to(c.device)
            c, s = c * dc - s * ds, s * dc + c * ds
        return args, {**kwargs, "position_embeddings": (c.to(cos.dtype), s.to(sin.dtype))}

    return hook


@contextmanager
def intervene(lm: LoadedModel, *edits: PositionEdit) -> Iterator[Rotary]:
    """Apply ``edits`` to every forward pass of ``lm`` inside the block (see the module docstring); yields
    the model's :class:`~tempo_lab.interventions.rotary.Rotary`. Edits of the same units add up (``R(a) R(b) =
    R(a + b)``), so edits whose shifts touch different batch rows act on their own rows only."""
    rotary = Rotary(lm)
    edits = [_check(e, rotary) for e in edits]
    model = lm.model
    by_layer: dict[int, list[PositionEdit]] = {}
    by_heads: dict[int, list[PositionEdit]] = {}
    for edit in edits:
        for layer in edit.layers if edit.layers is not None else range(rotary.n_layers):
            (by_heads if edit.heads is not None else by_layer).setdefault(layer, []).append(edit)
    original = model.config._attn_implementation
    if by_heads:
        lm.family.check_own_attention("a per-head position edit", computes_softmax=False)
    if by_heads and original.startswith("tempo_lab_") and original != HEADS_ATTENTION:
        raise ValueError(
            f"the model attends through {original!r} (another tempo_lab layout): per-head position edits "
            "attend through their own function and cannot run inside it; edit layers or bands instead"
        )
    now = CurrentPass()
    handles = [model.base_model.register_forward_pre_hook(now.record, with_kwargs=True)]
    if by_heads:
        with _paused():  # measured outside any enclosing intervention's edits
            positional = [rotary.is_positional(layer) for layer in range(rotary.n_layers)]
    stack = ExitStack()
    try:
        for layer, found in by_layer.items():
            hook = _layer_hook(rotary, layer, found, now)
            handles.append(rotary.layers[layer].register_forward_pre_hook(hook, with_kwargs=True))
        if by_heads:
            bound: dict[int, _Heads] = {}
            for layer in range(rotary.n_layers):  # every layer now attends through the registered function
                attention = rotary.attention(layer)
                if layer in by_heads:
                    rotary.apply(layer)  # refuses a family without the function before anything runs
                eager = sys.modules[type(attention).__module__].eager_attention_forward
                found = by_heads.get(layer, []) if positional[layer] else []  # a layer without RoPE: no move
                outer = _HEAD_EDITS.get(attention)  # an enclosing intervention's edits: they compose
                found = (outer.edits if outer else []) + found
                bound[id(attention)] = _Heads(rotary, layer, found, now, eager)
            stack.enter_context(_HEAD_EDITS.bound(bound))
            stack.enter_context(attending(model, HEADS_ATTENTION))
        yield rotary
    finally:
        for h in handles:
            h.remove()
        stack.close()
