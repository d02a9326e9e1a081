"""The byte-level language models of the TPI study: one transformer body, TPI or RoPE mixing.

Contents:
- ``ARCHITECTURES``: the named models of notebook 08 (the RoPE baseline and every TPI variant of the seed).
- ``ModelConfig``: architecture name, width, depth, dropout (checked on construction).
- ``CharLM``: bytes ``(B, T)`` -> logits ``(B, T, 256)``. Pre-norm blocks, each a mixing layer then a 4x
  GELU MLP
  with dropout, as in the seed document; tied input/output embeddings. The RoPE baseline takes
  ``positions``, a
  TPI model takes ``phase_shift``; neither has any other notion of place.
- ``build(name, **overrides)``: a ``CharLM`` for one of ``ARCHITECTURES``.
- ``sample(model, prompt, length, temperature, seed)``: seeded sampled text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from tempo_lab.tpi.layers import RoPEAttention, TPIAttention, TPIConfig

VOCAB = 256

#: name -> TPI (variant, memory), or None for the RoPE baseline
ARCHITECTURES: dict[str, tuple[str, str] | None] = {
    "rope": None,
    "tpi": ("single", "unbounded"),
    "tpi-window": ("single", "window"),
    "tpi-decay": ("single", "decay"),
    "tpi-decoupled": ("decoupled", "unbounded"),
    "tpi-offset": ("offset", "unbounded"),
    "tpi-constrained": ("constrained", "unbounded"),
}


@dataclass(frozen=True)
class ModelConfig:
    """A ``CharLM``'s shape: one of ``ARCHITECTURES``, width, depth, dropout, TPI hard window, RoPE heads."""

    architecture: str = "tpi"
    dim: int = 64
    layers: int = 4
    dropout: float = 0.1
    window: int = 64
    heads: int = 4

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; expected one of {tuple(ARCHITECTURES)}"
            )
        for name in ("dim", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.window < 1:
            raise ValueError(f"TPI window must be >= 1, got {self.window!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def is_tpi(self) -> bool:
        return ARCHITECTURES[self.architecture] is not None

    def as_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm residual block: mixing layer, then a 4x GELU MLP with dropout. (B, T, D) -> (B, T, D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        kind = ARCHITECTURES[config.architecture]
        self.norm1 = nn.LayerNorm(config.dim)
        self.norm2 = nn.LayerNorm(config.dim)
        if kind is None:
            self.mix: nn.Module = RoPEAttention(config.dim, config.heads)
        else:
            self.mix = TPIAttention(
                config.dim, TPIConfig(variant=kind[0], memory=kind[1], window=config.window)
            )
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, 4 * config.dim),
            nn.GELU(),
            nn.Linear(4 * config.dim, config.dim),
            nn.Dropout(config.dropout),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.mix(self.norm1(x), where))
        return x + self.mlp(self.norm2(x))


class CharLM(nn.Module):
    """Byte-level LM: ids (B, T) in [0, 256) -> logits (B, T, 256)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(VOCAB, config.dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        phase_shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, 256).

        positions: (B, T) or (T,), RoPE baseline only (default ``0..T-1``). phase_shift: radians
        broadcastable to
        (B, T, D), TPI only, added to every layer's accumulated phases.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, time), got shape {tuple(ids.shape)}")
        if self.config.is_tpi and positions is not None:
            raise ValueError(f"{self.config.architecture} has no positions; shift its phase with phase_shift")
        if not self.config.is_tpi and phase_shift is not None:
            raise ValueError("the RoPE baseline has no phase; move its tokens with positions")
        where = phase_shift if self.config.is_tpi else positions
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, where)
        return self.norm(x) @ self.embed.weight.T

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build(architecture: str, **overrides) -> CharLM:
    """A freshly initialised ``CharLM`` for one of ``ARCHITECTURES``, with ``ModelConfig`` fields
    overridden."""
    return CharLM(ModelConfig(architecture=architecture, **overrides))


@torch.no_grad()
def sample(model: CharLM, prompt: str, length: int = 200, temperature: float = 0.8, seed: int = 0) -> str:
    """``length`` bytes sampled after ``prompt`` (full recomputation each byte), decoded with replacement."""
    if not prompt:
        raise ValueError("sampling needs a non-empty prompt")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    generator = torch.Generator().manual_seed(seed)
    ids = torch.tensor([list(prompt.encode("utf-8"))])
    model.eval()
    for _ in range(length):
        probs = torch.softmax(model(ids)[0, -1] / temperature, dim=-1)
        ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)[None]], dim=1)
    return bytes(ids[0, len(prompt.encode("utf-8")) :].tolist()).decode("utf-8", errors="replace")
