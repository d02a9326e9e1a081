"""Position layouts: one sequence's positions and mask, what patching, attribution and search compare.

Two layouts over the same tokens differ only in where the tokens sit (and, for TEMPO sets, what they see), so
every slot lines up across them:

    clean, corrupt = Layout.contiguous(n), Layout.moved(n, slot=n - 1, by=20.0)  # a retroactive move
    Layout.of([0, 1, 2, 3, 4.5])                                                  # fractional
    Layout(positions, mask)                                    # anything the generators build

The tokens are given once (text, or ids ``(1, N)``), or as a ``(clean, corrupt)`` pair the way activation
patching across prompts takes them, which must then be the same tokens: :func:`shared_tokens`.

Contents: :class:`Layout`, :func:`shared_tokens`, :func:`check_pair`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.generators.core import DecodingCore
from tempo_lab.loaded import LoadedModel

Tokens = str | torch.Tensor | tuple[str | torch.Tensor, str | torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """``positions`` ``(1, N)`` float and an optional additive or bool ``mask`` ``(1, 1, N, N)`` (``None``:
    causal) over the slots of one sequence; ``name`` labels it in tables and figures."""

    positions: torch.Tensor
    mask: torch.Tensor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if (
            not isinstance(self.positions, torch.Tensor)
            or self.positions.dim() != 2
            or self.positions.shape[0] != 1
        ):
            got = tuple(self.positions.shape) if isinstance(self.positions, torch.Tensor) else self.positions
            raise ValueError(f"a layout's positions must have shape (1, N), got {got!r}")
        n = self.positions.shape[1]
        if self.mask is not None and tuple(self.mask.shape[-2:]) != (n, n):
            raise ValueError(
                f"the {self.label} layout's mask covers {tuple(self.mask.shape[-2:])} slots, not ({n}, {n})"
            )

    @classmethod
    def of(
        cls, positions: Sequence[float] | torch.Tensor, mask: torch.Tensor | None = None, name: str = ""
    ) -> Layout:
        """A layout from a list (or ``(N,)`` / ``(1, N)`` tensor) of positions."""
        p = torch.as_tensor(positions, dtype=torch.float32)
        return cls(p[None] if p.dim() == 1 else p, mask, name)

    @classmethod
    def contiguous(cls, n: int, name: str = "contiguous") -> Layout:
        """Positions ``0..n-1``, causal."""
        return cls(pos.contiguous(n), None, name)

    @classmethod
    def moved(cls, n: int, slot: int, by: float, name: str | None = None) -> Layout:
        """Contiguous positions with slot ``slot`` (and every later slot) moved by ``by``: a gap of ``by``
        before ``slot``."""
        p = pos.contiguous(n).clone()
        p[0, slot:] += by
        return cls(p, None, name or f"gap {by:g} before slot {slot}")

    @property
    def n(self) -> int:
        return self.positions.shape[1]

    @property
    def label(self) -> str:
        return self.name or "unnamed"

    def full_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """The additive mask ``(1, 1, N, N)`` in ``dtype`` (causal when none was given)."""
        return (
            masks.causal_mask(self.n, dtype=dtype)
            if self.mask is None
            else masks.ensure_additive(self.mask, dtype)
        )

    def model_inputs(self, lm: LoadedModel, tokens: str | torch.Tensor) -> dict[str, Any]:
        """The keyword arguments that make ``lm.model(**kwargs)`` compute this layout of ``tokens`` (text, or
        ids ``(N,)`` / ``(1, N)``, as many as the layout has slots): ``input_ids`` ``(1, N)``,
        ``position_ids`` ``(1, N)`` (float on a rotary model), the family's additive 4D mask(s) in the
        model's dtype, no cache. Pass them to any library that forwards them to the model (an nnsight trace,
        a TransformerLens bridge) to read or edit activations under this layout. tempo_lab's own passes are
        built by the same function (:meth:`~tempo_lab.generators.core.DecodingCore.inputs`), so the numbers
        agree. Positions are checked as every pass checks them (the context, fractional positions on a model
        without rotary embeddings)."""
        ids = shared_tokens(lm, tokens)
        if ids.shape[1] != self.n:
            raise ValueError(
                f"the {self.label} layout places {self.n} slots, and the tokens are {ids.shape[1]}"
            )
        return DecodingCore(lm).inputs(ids, self.positions, self.full_mask(lm.dtype), None)


def shared_tokens(lm: LoadedModel, tokens: Tokens) -> torch.Tensor:
    """The one token sequence ``(1, N)`` both layouts place: ``tokens`` as text, as ids ``(N,)`` / ``(1, N)``,
    or a ``(clean, corrupt)`` pair of either that must hold the same tokens (``ValueError`` naming the first
    slot where they differ)."""
    if isinstance(tokens, tuple):
        if len(tokens) != 2:
            raise ValueError(
                f"give the tokens once, or as a (clean, corrupt) pair; got {len(tokens)} sequences"
            )
        (_, a), (_, b) = lm.encode_prompt(tokens[0]), lm.encode_prompt(tokens[1])
        if a.shape != b.shape:
            raise ValueError(
                f"the clean tokens ({a.shape[1]} slots) and the corrupt tokens ({b.shape[1]} slots) "
                "differ in length: a layout pair changes positions only, over the same tokens"
            )
        if not torch.equal(a, b):
            i = int((a != b)[0].nonzero()[0])
            raise ValueError(
                f"the clean and corrupt tokens differ at slot {i} ({lm.token_str(int(a[0, i]))!r} against "
                f"{lm.token_str(int(b[0, i]))!r}): a layout pair changes positions only, over the same tokens"
            )
        return a
    return lm.encode_prompt(tokens)[1]


def check_pair(ids: torch.Tensor, clean: Layout, corrupt: Layout, dtype: torch.dtype) -> int:
    """Check two layouts fit the shared tokens ``ids`` ``(1, N)``; return the first slot at which they differ
    (its position or its mask row), ``N`` when they are the same."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != 1:
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else ids
        raise ValueError(f"ids must be one sequence of token ids of shape (1, N), got {got!r}")
    n = ids.shape[1]
    for which, layout in (("clean", clean), ("corrupt", corrupt)):
        if layout.n != n:
            raise ValueError(
                f"the {which} layout ({layout.label}) has {layout.n} slots for {n} tokens: both layouts must "
                "place the same tokens, one position per slot"
            )
    differs = (clean.positions != corrupt.positions)[0]
    rows = (clean.full_mask(dtype) != corrupt.full_mask(dtype))[0, 0].any(-1)
    changed = (differs.cpu() | rows.cpu()).nonzero()
    return int(changed[0]) if len(changed) else n
