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
- ``shift_view(models, text)``: notebook 08's live view: a model, an amount and where the move starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch

from tempo_lab import plots
from tempo_lab.labels import token_label
from tempo_lab.summaries import tv
from tempo_lab.tpi.model import CharLM
from tempo_lab.views import Control, Rendered, View, live_view


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


def shift_view(models: dict[str, CharLM], text: str) -> View:
    """Notebook 08's live view: the next byte after ``text`` when every byte from ``at`` on is moved by
    ``amount`` (positions for the RoPE baseline, radians of phase for a TPI model). It runs the chosen small
    model on every move. ``models``: name -> trained model."""
    names = list(models)
    ids = torch.tensor([list(text.encode("utf-8"))])

    def update(values, progress) -> Rendered:
        model, amount, at = values["model"], float(values["amount"]), int(values["at"])
        if model not in models:
            raise ValueError(f"no model {model!r}; choose one of {names}")
        base = shifted_distribution(models[model], ids, at, 0.0)
        moved = shifted_distribution(models[model], ids, at, amount)
        tv_ = tv(moved, base)
        top = moved.topk(8)
        labels = [token_label(bytes([int(i)]).decode("latin-1")) for i in top.indices]
        fig, (ax,) = plots.live_figure(7, 3.2)
        plots.top_token_bars(labels, top.values.tolist(), "", ax)
        unit = "positions" if not models[model].config.is_tpi else "radians"
        ax.set_title(f"{model}: next byte after {text[-24:]!r}, bytes {at}.. moved by {amount:g} {unit}")
        text_ = f"{model}, move {amount:g} {unit} from byte {at}: TV {tv_:.4f} against no move"
        return Rendered(text_, fig, {"tv": round(tv_, 6)})

    return live_view("tpi_shift", "TPI shift", {
        "model": Control(names[0], options=names, description="model"),
        "amount": Control(1.0, 0.0, 8.0, 0.25, description="move by"),
        "at": Control(len(ids[0]) // 2, 1, len(ids[0]) - 1, 1, description="from byte"),
    }, update)  # fmt: skip
