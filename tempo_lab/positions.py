"""Position ids: pure builders and their validation.

Contents: :func:`contiguous`, :func:`with_gap`, :func:`placed`, :func:`shared` (layouts), :func:`grid` (a
fine grid of positions for a sweep), :func:`validate` (the check every forward pass runs),
:func:`as_model_positions` (float for RoPE, int64 for position tables).

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


def contiguous(n: int, start: Number = 0) -> torch.Tensor:
    """``start, start+1, …, start+n-1``, shape ``(1, n)``."""
    if n < 1:
        raise ValueError(f"need at least one position, got n={n}")
    return validate(torch.arange(n, dtype=torch.float32).add_(float(start)).unsqueeze(0))


def with_gap(prompt_len: int, n_new: int = 1, gap: Number = 0) -> torch.Tensor:
    """Prompt at ``0..prompt_len-1``; the ``n_new`` tokens after it start at ``prompt_len + gap``.

    ``gap=0`` is ordinary contiguous order; ``gap`` may be fractional (``gap=0.5`` puts the next token at
    ``prompt_len + 0.5``). Shape ``(1, prompt_len + n_new)``.
    """
    gap = checks.nonnegative("gap", gap)
    prompt = torch.arange(prompt_len, dtype=torch.float32)
    new = torch.arange(n_new, dtype=torch.float32) + (prompt_len + float(gap))
    return validate(torch.cat([prompt, new]).unsqueeze(0))


def placed(prompt_len: int, position: Number) -> torch.Tensor:
    """Prompt at ``0..prompt_len-1`` and one more token at an arbitrary (possibly fractional) ``position``.

    Shape ``(1, prompt_len + 1)``. The position must not precede the last prompt position.
    """
    position = checks.number("position", position)
    prompt = torch.arange(prompt_len, dtype=torch.float32)
    return validate(torch.cat([prompt, torch.tensor([float(position)])])[None])


def shared(start: Number, set_sizes: Sequence[int]) -> torch.Tensor:
    """Positions for consecutive parallel-token sets: every member of set ``k`` sits at ``start + k``.

    Example: ``shared(5, [3, 1, 2])`` → ``[[5, 5, 5, 6, 7, 7]]``. Shape ``(1, sum(set_sizes))``.
    """
    start = checks.number("start", start)
    if any(s < 1 for s in set_sizes):
        raise ValueError(f"every set needs at least one member, got sizes {list(set_sizes)}")
    pos = [float(start) + k for k, size in enumerate(set_sizes) for _ in range(size)]
    return validate(torch.tensor(pos, dtype=torch.float32)[None])


def grid(start: Number, stop: Number, step: Number) -> list[float]:
    """``start, start + step, …`` up to and including ``stop`` (within rounding), rounded to 6 decimals.

    Example: ``grid(1, 2, 0.25)`` → ``[1.0, 1.25, 1.5, 1.75, 2.0]``.
    """
    start, stop = checks.number("start", start), checks.number("stop", stop)
    step = checks.positive("step", step)
    if stop < start:
        raise ValueError(f"stop ({stop:g}) must be >= start ({start:g})")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 6) for i in range(n)]


def validate(
    positions: torch.Tensor,
    *,
    max_positions: int | None = None,
    strict_context: bool = False,
    after: Number | None = None,
) -> torch.Tensor:
    """Check position ids ``(batch, n)`` and return them unchanged.

    Rejects NaN, infinity, negative values and decreasing steps (``p[i] < p[i-1]``; equal neighbours are
    allowed, as members of a parallel set share one position). ``after`` is the last position already in
    the cache: the first new position must not precede it. A position ``>= max_positions`` warns, or raises
    when ``strict_context``.
    """
    if positions.dim() != 2:
        raise ValueError(f"position ids must have shape (batch, n), got {tuple(positions.shape)}")
    p = positions.detach().to(torch.float64).cpu()
    for name, bad in (("NaN", torch.isnan(p)), ("infinite", torch.isinf(p)), ("negative", p < 0)):
        if bad.any():
            b, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(
                f"position_ids[{b}, {i}] is {name} ({p[b, i].item()}); positions must be finite and >= 0"
            )
    if p.shape[1] > 1:
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


def require_rotary_for(positions: torch.Tensor, is_rotary: bool) -> None:
    """Refuse fractional positions for a model with learned absolute position tables (e.g. GPT-2)."""
    frac = positions != positions.round()
    if frac.any() and not is_rotary:
        b, i = (int(x) for x in frac.nonzero()[0])
        value = positions[b, i].item()
        checks.integral_unless_rotary(f"position_ids[{b}, {i}] = {value:g}", value, is_rotary)


def as_model_positions(positions: torch.Tensor, is_rotary: bool) -> torch.Tensor:
    """Positions in the form the model takes: float for RoPE models, int64 for position tables."""
    require_rotary_for(positions, is_rotary)
    return positions if is_rotary else positions.round().long()
