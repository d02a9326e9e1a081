"""What the interop tests share: five layouts of one 9-token sequence, its tokens, the tiny models whose
attention is sharp enough that positions move the logits well past rounding, and tempo_lab's own forward of
a batch of layouts (the reference every adapter is held to)."""

from __future__ import annotations

import importlib
import os

import pytest
import torch

from tempo_lab import masks
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.tiny import tiny_random

N = 9
SET = torch.tensor([-1, -1, -1, -1, 0, 0, 0, -1, -1])
SHARED = [0, 1, 2, 3, 4, 4, 4, 5, 6]
LAYOUTS = {
    "gapped": Layout.of([0, 1, 2, 3, 14, 15, 16, 17, 18]),
    "fractional": Layout.of([0, 1, 1.5, 2.25, 3, 4.75, 5, 6, 7.5]),
    "set isolated": Layout.of(SHARED, masks.parallel_allowed(SET, "isolated")[:, None]),
    "set visible": Layout.of(SHARED, masks.parallel_allowed(SET, "visible")[:, None]),
    "moved": Layout.gapped(N, before=N - 1, gap=20.0),
}
FAMILIES = ["llama", "qwen2", "gemma2"]


def sharp_tiny(family: str) -> LoadedModel:
    """A tiny random model of ``family`` (Gemma 2 with a sliding window of 4) with its query and key
    projections scaled by 8."""
    made = tiny_random(family, seed=2, **({"sliding_window": 4} if family == "gemma2" else {}))
    with torch.no_grad():
        for layer in made.model.base_model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return made


def ids(n: int = N, seed: int = 3) -> torch.Tensor:
    """``(1, n)`` token ids."""
    return torch.randint(0, 200, (1, n), generator=torch.Generator().manual_seed(seed))


def forward(lm: LoadedModel, tokens: torch.Tensor, *layouts: Layout) -> torch.Tensor:
    """tempo_lab's own forward of ``tokens`` ``(1, N)`` under each layout, batch row ``i`` laid out by
    ``layouts[i]``: logits ``(len(layouts), N, vocab)``."""
    positions = torch.cat([layout.positions for layout in layouts])
    mask = torch.cat([layout.full_mask(lm.dtype) for layout in layouts])
    return DecodingCore(lm).forward(tokens.expand(len(layouts), -1), Layout(positions, mask))


def left_padded(pad: int, *rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids ``(1, n_i)`` left-padded with ``pad`` into ``(ids (B, W), attention_mask (B, W))``, as a
    tokenizer with ``padding_side="left"`` pads them."""
    width = max(r.shape[1] for r in rows)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, width - r.shape[1] :] = r[0]
        mask[i, width - r.shape[1] :] = 1
    return out, mask


def needs(module: str, extra: str) -> None:
    """Skip the calling test module when the optional library ``module`` is missing, saying how to install
    it; under CI (``$CI`` set), where the lock installs every extra, a missing library fails instead."""
    try:
        importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(
            f"{module} is not installed: pip install 'tempo_lab[{extra}]' (make setup installs it from "
            "the lock)",
            allow_module_level=True,
        )
