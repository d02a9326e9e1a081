"""tempo_lab: a workbench for how a RoPE transformer reacts to its positions.

Gaps, fractional positions, re-positioning a token after the fact, and TEMPO-style parallel tokens that share
one position. See README.md for the notebook series and the API.
"""

from tempo_lab import masks, positions
from tempo_lab.capture import AttentionRecord, capture_attention, span_mass
from tempo_lab.models import LoadedModel, load_model

__all__ = [
    "AttentionRecord",
    "LoadedModel",
    "capture_attention",
    "load_model",
    "masks",
    "positions",
    "span_mass",
]
