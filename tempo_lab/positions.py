"""Position ids: pure builders and their validation.

Contents: :func:`contiguous`, :func:`with_gap`, :func:`appended`, :func:`shared` (position rows), :func:`grid`
(a fine grid of positions for a sweep), :func:`validate` (the check every layout runs when it is built),
:func:`as_model_positions` (float for RoPE, int64 for position tables). A row of positions with its mask is a
:class:`~tempo_lab.layout.Layout`.

All builders return a float tensor of shape ``(1, n)`` (RoPE casts positions to float anyway, and fractional
positions need it). Integral float positions give the same logits as integer ones. Validation names the
offending index in every message.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from tempo_lab.plumbing import checks

Number = int | float
#: the largest position tempo_lab takes: rotary embeddings compute angles from float32 positions, which hold
#: every integer only up to 2**24 (past it, neighbouring positions collapse into one value)
MAX_POSITION = 2**24


#: the most points a :func:`grid` makes (a sweep's passes grow with it; more is a mistake, not a sweep)
MAX_GRID = 1_000_000


def contiguous(n: int, start: Number = 0) -> torch.Tensor:
    """``start, start+1, …, start+n-1``, shape ``(1, n)``."""
    n = checks.count("n", n)
    start = checks.nonnegative("start", start)
    return validate(torch.arange(n, dtype=torch.float32).add_(float(start)).unsqueeze(0))


def with_gap(prompt_len: int, n_new: int = 1, gap: Number = 0) -> torch.Tensor:
    """Prompt at ``0..prompt_len-1``; the ``n_new`` tokens after it start at ``prompt_len + gap``.

    ``gap=0`` is ordinary contiguous order; ``gap`` may be fractional (``gap=0.5`` puts the next token at
    ``prompt_len + 0.5``). Shape ``(1, prompt_len + n_new)``.
    """
    prompt_len, n_new = checks.count("prompt_len", prompt_len), checks.count("n_new", n_new)
    gap = checks.nonnegative("gap", gap)
    prompt = torch.arange(prompt_len, dtype=torch.float32)
    new = torch.arange(n_new, dtype=torch.float32) + (prompt_len + float(gap))
    return validate(torch.cat([prompt, new]).unsqueeze(0))


def appended(prompt_len: int, position: Number) -> torch.Tensor:
    """Prompt at ``0..prompt_len-1`` and one more token appended at an arbitrary (possibly fractional)
    ``position``.

    Shape ``(1, prompt_len + 1)``. The position must not precede the last prompt position.
    """
    prompt_len = checks.count("prompt_len", prompt_len)
    position = checks.number("position", position)
    prompt = torch.arange(prompt_len, dtype=torch.float32)
    return validate(torch.cat([prompt, torch.tensor([float(position)])])[None])


def shared(start: Number, set_sizes: Sequence[int]) -> torch.Tensor:
    """Positions for consecutive parallel-token sets: every member of set ``k`` sits at ``start + k``.

    Example: ``shared(5, [3, 1, 2])`` → ``[[5, 5, 5, 6, 7, 7]]``. Shape ``(1, sum(set_sizes))``.
    """
    start = checks.nonnegative("start", start)
    set_sizes = checks.as_list(set_sizes)
    if not set_sizes or any(not checks.is_number(s) or s != int(s) or s < 1 for s in set_sizes):
        raise ValueError(f"every set needs at least one member, got sizes {list(set_sizes)}")
    pos = [float(start) + k for k, size in enumerate(set_sizes) for _ in range(size)]
    return validate(torch.tensor(pos, dtype=torch.float32)[None])


def grid(start: Number, stop: Number, step: Number) -> list[float]:
    """``start, start + step, …`` up to and including ``stop`` (within rounding), rounded to 6 decimals.

    Example: ``grid(1, 2, 0.25)`` → ``[1.0, 1.25, 1.5, 1.75, 2.0]``. At most :data:`MAX_GRID` points.
    """
    start, stop = checks.number("start", start), checks.number("stop", stop)
    step = checks.positive("step", step)
    if stop < start:
        raise ValueError(f"stop ({stop:g}) must be >= start ({start:g})")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > MAX_GRID:
        raise ValueError(
            f"grid({start:g}, {stop:g}, {step:g}) would make {n:,} points, more than {MAX_GRID:,}: "
            "take a larger step or a narrower range"
        )
    return [round(start + i * step, 6) for i in range(n)]


def validate(
    positions: torch.Tensor,
    *,
    max_positions: int | None = None,
    strict_context: bool = False,
    after: Number | None = None,
    ordered: bool = True,
) -> torch.Tensor:
    """Check position ids ``(batch, n)`` and return them unchanged.

    Rejects NaN, infinity, negative values, values past :data:`MAX_POSITION` and decreasing steps (``p[i] <
    p[i-1]``; equal neighbours are allowed, as members of a parallel set share one position; ``ordered=False``
    allows them). ``after`` is the last position already in the cache: the first new position must not precede
    it. A position ``>= max_positions`` warns, or raises when ``strict_context``. """
    if positions.dim() != 2:
        raise ValueError(f"position ids must have shape (batch, n), got {tuple(positions.shape)}")
    p = positions.detach().to(torch.float64).cpu()
    for name, bad in (("NaN", torch.isnan(p)), ("infinite", torch.isinf(p)), ("negative", p < 0)):
        if bad.any():
            b, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(
                f"position_ids[{b}, {i}] is {name} ({p[b, i].item()}); positions must be finite and >= 0"
            )
    if (p > MAX_POSITION).any():
        b, i = (int(x) for x in (p > MAX_POSITION).nonzero()[0])
        raise ValueError(
            f"position_ids[{b}, {i}] = {p[b, i].item():g} is past {MAX_POSITION:,} (2**24): rotary "
            "embeddings compute their angles from float32 positions, which stop holding every integer there"
        )
    if ordered and p.shape[1] > 1:
        down = p[:, 1:] < p[:, :-1]
        if down.any():
            b, i = (int(x) for x in down.nonzero()[0])
            raise ValueError(
                f"position_ids[{b}, {i + 1}] = {p[b, i + 1].item()} decreases from position_ids[{b}, {i}] = "
                f"{p[b, i].item()}; positions must not decrease (only parallel-set members may repeat one)"
            )
    if after is not None and (p[:, 0] < after).any():
        b = int((p[:, 0] < after).nonzero()[0])
        raise ValueError(
            f"position_ids[{b}, 0] = {p[b, 0].item()} precedes the last cached position {after}; "
            "new positions must not decrease"
        )
    if max_positions is not None and (p >= max_positions).any():
        b, i = (int(x) for x in (p >= max_positions).nonzero()[0])
        msg = checks.context_message(f"position_ids[{b}, {i}]", p[b, i].item(), max_positions)
        if strict_context:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    return positions


def as_model_positions(positions: torch.Tensor, integer_reason: str = "") -> torch.Tensor:
    """Positions in the form the model takes: float where it computes rotary angles from them, int64 where
    it looks them up in a table (``integer_reason``, the family's
    :meth:`~tempo_lab.families.Family.position_reason`, says why; fractional positions are refused there)."""
    if not integer_reason:
        return positions
    frac = positions != positions.round()
    if frac.any():
        b, i = (int(x) for x in frac.nonzero()[0])
        value = positions[b, i].item()
        checks.integral_position(f"position_ids[{b}, {i}] = {value:g}", value, integer_reason)
    return positions.round().long()
