"""Which rotation angles each rotary band reaches: in training, and past the trained context under a scaling.

A band of frequency ``f`` (radians per position) rotates a query-key pair ``d`` positions apart by ``d·f``.
Trained on ``L₀`` positions, it saw the angles ``[0, (L₀-1)·f]``, every phase once that reaches ``2π``. Run
on ``L`` positions with the scaled frequency ``f'``, it reaches ``[0, (L-1)·f']``: the part of that range
(within one turn) the band never saw is new to every layer that reads it. Interpolation keeps every band
inside its trained range but divides its step ``f'/f``: neighbouring tokens move closer than any pair did in
training. Per band:

- ``wavelength``: ``2π/f`` positions; ``trained_turns``: ``(L₀-1)·f / 2π``, the turns it made in training;
- ``unseen``: the share of its angle range at ``L`` (up to one turn) that lies past the trained range (0: no
  new angle; plain extrapolation gives every band of fewer than one trained turn a share > 0);
- ``step``: ``f'/f``, how much one position now rotates it against training (1: unchanged).

Contents: :func:`band_angles`.
"""

from __future__ import annotations

import math

import pandas as pd

from tempo_lab.extension.scaling import RopeScaling, scaled_table
from tempo_lab.loaded import LoadedModel, trained_context
from tempo_lab.plumbing import checks


def band_angles(
    lm: LoadedModel, length: int, scalings: dict[str, RopeScaling | None], layer: int = 0
) -> pd.DataFrame:
    """One row per (method, band) of ``lm``'s rotary at ``layer`` for sequences of ``length`` positions:
    ``method, band, wavelength, trained_turns, unseen, step`` (see the module docstring). ``scalings`` maps
    a method's name to its :class:`RopeScaling`, ``None`` for the plain model."""
    length = checks.count("length", length)
    trained = trained_context(lm)
    base, _ = scaled_table(lm, RopeScaling.linear(1.0), layer)  # the model's own frequencies (bands,)
    rows = []
    for name, scaling in scalings.items():
        freq = base if scaling is None else scaled_table(lm, scaling, layer)[0]
        for band, (f, g) in enumerate(zip(base.tolist(), freq.tolist(), strict=True)):
            seen = min((trained - 1) * f, 2 * math.pi)
            reached = min((length - 1) * g, 2 * math.pi)
            rows.append({
                "method": name,
                "band": band,
                "wavelength": 2 * math.pi / f,
                "trained_turns": (trained - 1) * f / (2 * math.pi),
                "unseen": max(0.0, reached - seen) / reached if reached > 0 else 0.0,
                "step": g / f,
            })  # fmt: skip
    return pd.DataFrame(rows)
