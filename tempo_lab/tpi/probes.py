"""The workbench's position probes, applied to the TPI study's models: a gap for RoPE, a phase for TPI.

A RoPE model places every byte at a position; a gap of ``g`` after byte ``at`` adds ``g`` to the position of
every later byte (a fraction gives a fractional offset). A TPI model has no positions; its analogue is an
inserted phase: ``amount`` radians added to the accumulated phase of every byte from ``at`` on, which is
what a
run of skipped bytes with total frequency ``amount`` would have done.

Contents:
- ``shifted_distribution(model, ids, at, amount)``: the next-byte distribution ``(256,)`` after the shift.
- ``shift_sweep(models, prompts, at, amounts)``: total variation against the unshifted distribution and top-1
  change, one row per model x prompt x amount.

Its live view is :func:`tempo_lab.tpi.display.shift_view` (this module imports no plotting library).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch

from tempo_lab.summaries import tv
from tempo_lab.tpi.model import CharLM


@torch.no_grad()
def shifted_distribution(model: CharLM, ids: torch.Tensor, at: int, amount: float) -> torch.Tensor:
    """Next-byte probabilities (256,) for ids (1, T), with every byte from index ``at`` moved by ``amount``
    (positions for RoPE, radians of phase for TPI)."""
    length = ids.shape[-1]
    if not 0 < at < length:
        raise ValueError(f"shift index at={at} must fall inside the sequence (1..{length - 1})")
    moved = (torch.arange(length) >= at).float() * amount  # (T,)
    if model.config.is_tpi:
        logits = model(ids, phase_shift=moved[None, :, None])
    else:
        logits = model(ids, positions=torch.arange(length) + moved)
    return torch.softmax(logits[0, -1].double(), dim=-1)


def shift_sweep(
    models: dict[str, CharLM], prompts: Iterable[torch.Tensor], at: int, amounts: Sequence[float]
) -> pd.DataFrame:
    """One row per model x prompt x amount: ``tv`` against amount 0, ``top1_changed``."""
    rows = []
    for p, ids in enumerate(prompts):
        ids = ids.view(1, -1)
        for name, model in models.items():
            base = shifted_distribution(model, ids, at, 0.0)
            for amount in amounts:
                dist = shifted_distribution(model, ids, at, amount)
                rows.append(
                    {
                        "model": name,
                        "prompt": p,
                        "amount": float(amount),
                        "tv": tv(dist, base),
                        "top1_changed": bool(dist.argmax() != base.argmax()),
                    }
                )
    return pd.DataFrame(rows)

