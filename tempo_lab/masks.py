"""Additive attention masks, built from *sequence order* (cache slots), never from position values.

Every mask here is an additive float mask in the model's dtype, shape ``(batch, 1, q_len, kv_len)``: 0 where a
query may attend, ``torch.finfo(dtype).min`` where it may not. The queries are the *last* ``q_len`` of the
``kv_len`` slots, so the same builders serve a prefill (``q_len == kv_len``) and a cached step
(``kv_len = cached + q_len``).

Why additive: eager attention computes ``scores + mask``. A boolean mask added that way contributes 0/1 and
masks nothing (future tokens leak), while SDPA reads the same boolean mask correctly. An additive float mask
means the same thing to both. Passing any explicit mask also switches off transformers' packed-sequence
detection, which otherwise splits a sequence at every position gap and hides the prompt from the token after
the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from tempo_lab.plumbing import checks

IntraSet = Literal["isolated", "visible"]
#: what the members of one parallel set see of each other (:func:`parallel_allowed`)
INTRASET_MODES: tuple[str, ...] = ("isolated", "visible")


def to_additive(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean "may attend" mask → additive float mask of the same shape."""
    if allowed.dtype != torch.bool:
        raise TypeError(f"expected a bool mask, got {allowed.dtype}")
    out = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return out.masked_fill_(~allowed, torch.finfo(dtype).min)


def to_bool(additive: torch.Tensor) -> torch.Tensor:
    """Additive float mask → boolean "may attend" mask (True where the mask adds 0)."""
    if not additive.is_floating_point():
        raise TypeError(f"expected a float additive mask, got {additive.dtype}")
    return additive == 0


def ensure_additive(mask: torch.Tensor, dtype: torch.dtype, *, convert_bool: bool = True) -> torch.Tensor:
    """The guard every forward pass goes through: return an additive 4D mask in ``dtype``.

    A boolean mask is converted (or refused with ``convert_bool=False``), never passed on to be silently added
    as 0/1 by eager attention. A float mask in another dtype is re-expressed in ``dtype`` (its ``finfo.min``).
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"attention masks must have shape (batch, 1, q_len, kv_len), got {tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        if not convert_bool:
            raise TypeError(
                "a boolean 4D mask would be added as 0/1 by eager attention and mask nothing; "
                "convert it with tempo_lab.masks.to_additive"
            )
        return to_additive(mask, dtype)
    if not mask.is_floating_point():
        raise TypeError(f"attention masks must be bool or float, got {mask.dtype}")
    if mask.dtype != dtype:
        return to_additive(to_bool(mask), dtype)
    return mask


def causal_allowed(
    q_len: int, kv_len: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean causal visibility ``(q_len, kv_len)``: query ``i`` sits at slot ``kv_len - q_len + i``."""
    kv_len = q_len if kv_len is None else kv_len
    if q_len < 1 or kv_len < q_len:
        raise ValueError(f"need 1 <= q_len <= kv_len, got q_len={q_len}, kv_len={kv_len}")
    q_slot = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]
    return torch.arange(kv_len, device=device)[None, :] <= q_slot


def causal_mask(
    q_len: int,
    kv_len: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    batch: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Additive causal mask ``(batch, 1, q_len, kv_len)``; queries are the last ``q_len`` slots."""
    allowed = causal_allowed(q_len, kv_len, device=device)
    return to_additive(allowed, dtype)[None, None].expand(batch, 1, -1, -1)


def left_padded(allowed: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of different lengths in one batch, left-padded (a tokenizer's ``padding_side="left"``): each row's
    boolean visibility ``(n_i, n_i)`` in the last ``n_i`` slots of ``(B, W, W)``, ``W`` the longest. A padding
    slot sees only itself (no softmax row is empty) and no real slot sees it. Returns ``(allowed (B, W, W),
    real (B, W))``, ``real`` marking each row's own slots (their ranks, ``real.cumsum(-1) - 1``, are what
    sliding windows count in: :meth:`~tempo_lab.families.Family.layer_masks`)."""
    if not allowed:
        raise ValueError("left_padded needs at least one row")
    for i, a in enumerate(allowed):
        if a.dim() != 2 or a.shape[0] != a.shape[1] or a.dtype != torch.bool:
            raise ValueError(
                f"row {i}: expected a square bool visibility (n, n), got {a.dtype} {tuple(a.shape)}"
            )
    width = max(a.shape[0] for a in allowed)
    out = torch.eye(width, dtype=torch.bool).repeat(len(allowed), 1, 1)
    real = torch.zeros(len(allowed), width, dtype=torch.bool)
    for r, a in enumerate(allowed):
        pad = width - a.shape[0]
        out[r, pad:, pad:] = a.cpu()
        real[r, pad:] = True
    return out, real


def set_labels(set_sizes: Sequence[int], prefix_len: int = 0) -> torch.Tensor:
    """Slot labels for a prefix of ordinary tokens followed by parallel sets.

    Ordinary slots get ``-1``; the members of set ``k`` get ``k``. Example: ``set_labels([2, 1], 3)`` →
    ``[-1, -1, -1, 0, 0, 1]``. Shape ``(prefix_len + sum(set_sizes),)``.
    """
    labels = [-1] * prefix_len + [k for k, size in enumerate(set_sizes) for _ in range(size)]
    return torch.tensor(labels, dtype=torch.long)


LATER_MODES = ("all", "first", "none")
NEVER = 2**62  # a ``hidden_after`` value: the slot is never hidden


def parallel_allowed(
    labels: torch.Tensor,
    mode: IntraSet,
    q_len: int | None = None,
    *,
    later: str = "all",
    hidden_after: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean visibility for a layout with parallel sets, ``(batch, q_len, kv_len)``.

    ``labels``: ``(kv_len,)`` or ``(batch, kv_len)``, one label per cache slot: ``-1`` for an ordinary token,
    the same label ``>= 0`` for every member of one parallel set (a set of one member is an ordinary
    generated token). ``mode`` is what the members of one set see of each other: ``visible``, plain causal
    order over slots; ``isolated``, causal, except that a member never sees the *other* members of its own set
    (it sees the prefix, every earlier set and itself).

    ``later`` is what *later* tokens see of a set of two or more members: ``"all"`` (every member),
    ``"first"`` (only its first, most probable member) or ``"none"`` (no member: the set shaped the text only
    through the tokens selected from its members' distributions). ``hidden_after``: ``(kv_len,)``, per slot
    the label of the last step whose queries may still see it (:data:`NEVER` = always): a pruned member is
    hidden from the queries of every later step, by its mask column alone.
    """
    checks.choice("mode", mode, INTRASET_MODES)
    checks.choice("later", later, LATER_MODES)
    labels = labels if labels.dim() == 2 else labels[None]
    kv_len = labels.shape[1]
    q_len = kv_len if q_len is None else q_len
    allowed = causal_allowed(q_len, kv_len, device=labels.device)[None].repeat(labels.shape[0], 1, 1)
    q_labels = labels[:, kv_len - q_len :, None]  # (batch, q, 1)
    k_labels = labels[:, None, :]  # (batch, 1, kv)
    if mode == "isolated":
        same_set = (q_labels == k_labels) & (q_labels >= 0)  # (batch, q, kv)
        own_slot = torch.arange(kv_len, device=labels.device)[None, :] == torch.arange(
            kv_len - q_len, kv_len, device=labels.device
        )[:, None]
        allowed &= ~(same_set & ~own_slot[None])
    if later != "all":
        sizes = torch.zeros_like(labels)
        for b in range(labels.shape[0]):
            ids, counts = labels[b][labels[b] >= 0].unique(return_counts=True)
            for k, c in zip(ids.tolist(), counts.tolist(), strict=True):
                sizes[b, labels[b] == k] = c
        in_set = (k_labels >= 0) & (sizes[:, None, :] >= 2)
        is_later = q_labels > k_labels  # a query of a later step
        hide = in_set & is_later
        if later == "first":
            first = torch.zeros_like(labels, dtype=torch.bool)
            first[:, 1:] = labels[:, 1:] != labels[:, :-1]
            first[:, 0] = True
            hide &= ~first[:, None, :]
        allowed &= ~hide
    if hidden_after is not None:
        allowed &= ~(q_labels > hidden_after.to(labels.device)[None, None, :])
    return allowed


def parallel_mask(
    labels: torch.Tensor,
    mode: IntraSet,
    q_len: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    later: str = "all",
    hidden_after: torch.Tensor | None = None,
) -> torch.Tensor:
    """Additive mask ``(batch, 1, q_len, kv_len)`` for a parallel-set layout; see :func:`parallel_allowed`."""
    allowed = parallel_allowed(labels, mode, q_len, later=later, hidden_after=hidden_after)
    return to_additive(allowed, dtype)[:, None]
