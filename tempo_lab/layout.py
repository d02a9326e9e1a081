"""Layouts: where each slot of a pass sits and what it sees, the one carrier of positions and masks that every
forward pass takes (:class:`~tempo_lab.forward.DecodingCore`).

    Layout.contiguous(n)                            # positions 0..n-1, causal
    Layout.gapped(n, before=n - 1, gap=20.0)        # the last token 20 positions on (a gap before it)
    Layout.of([0, 1, 2, 3, 4.5])                    # any positions, causal
    Layout(positions, mask)                         # anything: TEMPO sets, hidden slots, padded rows
    Layout(positions, any_order=True)               # positions that go back (a sink moved beside the end)

A layout lays out the *last* ``q`` of ``kv`` slots: ``positions`` ``(batch or 1, q)`` and ``mask`` ``None``
(causal: each slot sees every slot up to its own) or ``(batch or 1, 1, q, kv)``, bool ("may attend") or
additive (0 where a query may attend, ``-inf`` or ``finfo(dtype).min`` where not). A whole sequence has
``kv == q``; a cached step over ``kv - q`` cached slots is a slice of the whole sequence's layout,
:meth:`Layout.step`. A causal layout (``mask is None``) builds no ``q x kv`` mask at all: the forward hands
the model a 2D all-ones mask and the model takes its own causal path (SDPA's ``is_causal`` kernel at 16k
tokens), which also switches off transformers' packed-sequence detection (notebook 01's gap dropout).

Every layout is checked when it is built, so a bad one never reaches a model (the mistake named with its
index): positions are finite, ``>= 0`` and never decrease along a row (only parallel-set members repeat one;
``any_order`` lets a token move out of order on purpose); a mask has the right shape, holds only "attend" and
"masked" values, lets no query see a later slot than its own, and leaves no query row with nothing to attend
to (eager attention would spread such a row over every slot, the future included). What depends on the model
(its context, its vocabulary, its family) is checked by the forward.

Contents: :class:`Layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.plumbing import checks

if TYPE_CHECKING:  # pragma: no cover
    from tempo_lab.loaded import LoadedModel


@dataclass(frozen=True, eq=False)
class Layout:
    """``positions`` ``(batch or 1, q)`` float and ``mask`` ``None`` (causal) or ``(batch or 1, 1, q, kv)``
    over the last ``q`` of ``kv`` slots (see the module docstring); ``name`` labels it in tables and
    figures; ``any_order``: positions may decrease along a row (a token moved out of order on purpose).
    Integer positions are taken as float; positions that require grad keep their graph."""

    positions: torch.Tensor
    mask: torch.Tensor | None = None
    name: str = ""
    any_order: bool = False

    def __post_init__(self) -> None:
        p = self.positions
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"the {self.label} layout's positions must be a tensor, got {type(p).__name__}")
        if p.dim() != 2 or p.shape[1] == 0:
            raise ValueError(
                f"the {self.label} layout's positions must have shape (batch, q) with q >= 1, got "
                f"{tuple(p.shape)}"
            )
        if p.dtype == torch.bool or p.is_complex():
            raise ValueError(f"the {self.label} layout's positions must be numbers, got {p.dtype}")
        if not p.is_floating_point():
            object.__setattr__(self, "positions", p.to(torch.float32))
        pos.validate(self.positions, ordered=not self.any_order)
        if self.mask is not None:
            object.__setattr__(self, "mask", _checked_mask(self.mask, self.positions.shape, self.label))

    # --- building ---

    @classmethod
    def of(
        cls, positions: Sequence[float] | torch.Tensor, mask: torch.Tensor | None = None, name: str = ""
    ) -> Layout:
        """A layout from a list (or ``(q,)`` / ``(batch, q)`` tensor) of positions."""
        if isinstance(positions, torch.Tensor):
            p = positions if positions.is_floating_point() else positions.to(torch.float32)
        else:
            values = checks.as_list(positions)
            for i, v in enumerate(values):
                checks.number(f"positions[{i}]", v)
            p = torch.tensor(values, dtype=torch.float32)
        return cls(p[None] if p.dim() == 1 else p, mask, name)

    @classmethod
    def contiguous(cls, n: int, name: str = "contiguous", *, start: float = 0) -> Layout:
        """Positions ``start..start+n-1``, causal."""
        return cls(pos.contiguous(checks.count("n", n), start), None, name)

    @classmethod
    def gapped(cls, n: int, before: int, gap: float, name: str | None = None) -> Layout:
        """Contiguous positions with a gap of ``gap`` before slot ``before``: that slot and every later one
        moved on by ``gap`` (``before = n - 1``: only the last token moved)."""
        n = checks.count("n", n)
        before = checks.integer_in("before", before, 0, n - 1)
        gap = checks.nonnegative("gap", gap)
        p = pos.contiguous(n).clone()
        p[0, before:] += gap
        return cls(p, None, name or f"gap {gap:g} before slot {before}")

    # --- reading ---

    @property
    def q(self) -> int:
        """The number of slots this layout places (the queries of its pass)."""
        return self.positions.shape[1]

    n = q  # a whole sequence's slots

    @property
    def kv(self) -> int:
        """The slots its queries can see: ``q`` plus the slots cached before them."""
        return self.q if self.mask is None else self.mask.shape[-1]

    @property
    def cached(self) -> int:
        """How many slots sit before this layout's queries (a cache holds them)."""
        return self.kv - self.q

    @property
    def batch(self) -> int:
        return max(self.positions.shape[0], 1 if self.mask is None else self.mask.shape[0])

    @property
    def is_causal(self) -> bool:
        return self.mask is None

    @property
    def label(self) -> str:
        return self.name or "unnamed"

    def full_mask(self, dtype: torch.dtype, kv: int | None = None) -> torch.Tensor:
        """The additive mask ``(batch or 1, 1, q, kv)`` in ``dtype`` (built, for a causal layout, over
        ``kv`` slots: default its own ``kv``)."""
        if self.mask is None:
            return masks.causal_mask(self.q, kv or self.kv, dtype=dtype, device=self.positions.device)
        return masks.ensure_additive(self.mask, dtype)

    def allowed(self) -> torch.Tensor:
        """The boolean "may attend" mask ``(batch or 1, 1, q, kv)``."""
        return masks.to_bool(self.full_mask(torch.float32))

    def step(self, start: int, stop: int | None = None) -> Layout:
        """Slots ``start..stop-1`` of this whole-sequence layout as a cached step: their positions, and their
        mask rows over the first ``stop`` slots (the first ``start`` already in the cache)."""
        stop = self.q if stop is None else stop
        if self.cached:
            raise ValueError(f"the {self.label} layout is already a step over {self.cached} cached slots")
        start = checks.integer_in("start", start, 0, self.q - 1)
        stop = checks.integer_in("stop", stop, start + 1, self.q)
        mask = None if self.mask is None else self.mask[..., start:stop, :stop]
        return Layout(self.positions[:, start:stop], mask, self.name, self.any_order)

    def expand(self, batch: int) -> Layout:
        """The same layout for ``batch`` rows (a layout of one row repeated; views, no copy)."""
        if self.batch not in (1, batch):
            raise ValueError(f"the {self.label} layout has {self.batch} rows, not 1 or {batch}")
        mask = None if self.mask is None else self.mask.expand(batch, -1, -1, -1)
        return Layout(self.positions.expand(batch, -1), mask, self.name, self.any_order)

    def model_inputs(self, lm: LoadedModel, tokens: str | torch.Tensor) -> dict[str, Any]:
        """The keyword arguments that make ``lm.model(**kwargs)`` compute this layout of ``tokens`` (text, or
        ids ``(q,)`` / ``(1, q)``, one token per slot): ``input_ids`` ``(1, q)``, ``position_ids`` ``(1, q)``
        (float on a rotary model), the attention mask (the family's additive 4D mask(s) in the model's dtype,
        or the 2D all-ones mask of a causal layout), no cache. Pass them to any library that forwards them to
        the model (an nnsight trace, a TransformerLens bridge) to read or edit activations under this layout.
        tempo_lab's own passes are built by the same function
        (:meth:`~tempo_lab.forward.DecodingCore.inputs`), so the numbers agree."""
        from tempo_lab.forward import DecodingCore  # the forward builds on layouts, not the other way round

        ids = lm.encode_prompt(tokens)[1]
        if ids.shape[1] != self.q:
            raise ValueError(
                f"the {self.label} layout places {self.q} slots, and the tokens are {ids.shape[1]}"
            )
        return DecodingCore(lm).inputs(ids, self, None)


def _checked_mask(mask: Any, shape: torch.Size, label: str) -> torch.Tensor:
    """``mask`` if it fits positions of ``shape`` ``(batch, q)`` (see the module docstring)."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"the {label} layout's mask must be a tensor or None, got {type(mask).__name__}")
    b, q = shape
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, b) or mask.shape[2] != q:
        raise ValueError(
            f"the {label} layout's mask has shape {tuple(mask.shape)}; for positions of shape ({b}, {q}) it "
            f"must be (1 or {b}, 1, {q}, kv) with kv >= {q}"
        )
    kv = mask.shape[3]
    if kv < q:
        raise ValueError(f"the {label} layout's mask covers {kv} slots, fewer than its {q} queries")
    if mask.dtype == torch.bool:
        allowed = mask
    elif mask.is_floating_point():
        if torch.isnan(mask).any():
            index = tuple(int(i) for i in torch.isnan(mask).nonzero()[0])
            raise ValueError(f"the {label} layout's mask is NaN at {list(index)}")
        masked = mask <= torch.finfo(mask.dtype).min / 2
        other = (mask != 0) & ~masked
        if other.any():
            index = tuple(int(i) for i in other.nonzero()[0])
            raise ValueError(
                f"the {label} layout's mask holds {mask[index].item():g} at {list(index)}: an additive mask "
                "holds 0 where a query may attend and -inf or finfo(dtype).min where it may not (or give a "
                "bool mask)"
            )
        allowed = ~masked
    else:
        raise ValueError(f"the {label} layout's mask must be bool or float, got {mask.dtype}")
    empty = ~allowed.any(-1)  # (batch, 1, q)
    if empty.any():
        r, _, i = (int(x) for x in empty.nonzero()[0])
        raise ValueError(
            f"query {i} (slot {kv - q + i}) of row {r} of the {label} layout's mask attends to nothing: "
            "eager attention would spread it over every slot, the future included; let it see at least itself"
        )
    later = allowed & ~masks.causal_allowed(q, kv, device=mask.device)
    if later.any():
        r, _, i, j = (int(x) for x in later.nonzero()[0])
        raise ValueError(
            f"the {label} layout's mask lets query {i} (slot {kv - q + i}) of row {r} see slot {j}, a later "
            "slot: layouts are causal in slot order (a cached step cannot see slots not fed yet)"
        )
    return mask
