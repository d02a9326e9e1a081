"""Pairs of layouts over the same tokens: what patching, attribution and search compare.

Two layouts over the same tokens differ only in where the tokens sit (and, for TEMPO sets, what they see), so
every slot lines up across them:

    clean, corrupt = Layout.contiguous(n), Layout.gapped(n, before=n - 1, gap=20.0)  # a retroactive move

The tokens are given once (text, or ids ``(1, N)``), or as a ``(clean, corrupt)`` pair the way activation
patching across prompts takes them, which must then be the same tokens: :func:`shared_tokens`. The layouts
themselves are :class:`tempo_lab.layout.Layout`.

Contents: :data:`Tokens`, :func:`shared_tokens`, :func:`check_pair`.
"""

from __future__ import annotations

import torch

from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel

Tokens = str | torch.Tensor | tuple[str | torch.Tensor, str | torch.Tensor]


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
        if not isinstance(layout, Layout):
            raise ValueError(f"the {which} layout must be a tempo_lab Layout, got {type(layout).__name__}")
        if layout.batch != 1 or layout.cached:
            raise ValueError(
                f"the {which} layout ({layout.label}) must place one whole sequence (one row, no cached "
                f"slots); it has {layout.batch} row(s) over {layout.cached} cached slot(s)"
            )
        if layout.n != n:
            raise ValueError(
                f"the {which} layout ({layout.label}) has {layout.n} slots for {n} tokens: both layouts must "
                "place the same tokens, one position per slot"
            )
    differs = (clean.positions != corrupt.positions)[0]
    rows = (clean.full_mask(dtype) != corrupt.full_mask(dtype))[0, 0].any(-1)
    changed = (differs.cpu() | rows.cpu()).nonzero()
    return int(changed[0]) if len(changed) else n
