"""The mixing layers of the TPI study: temporal phase integration (TPI) and its RoPE softmax baseline.

TPI retrieves through a phase that the content drives, with no positions anywhere::

    phi_t      = sum_{s<=t} omega(x_s)                       # (B, T, D) per channel
    memory_t   = sum_{s<=t} w(t, s) * v(x_s) * exp(i*phi_s)  # w: 1, a hard window, or a learned decay
    retrieved_t = memory_t * exp(-i*phi_t) / sum_s w(t, s)   # normalised by the weight it summed

Contents:
- ``VARIANTS``, ``MEMORIES``: the phase variants and memory kinds, as the seed document names them.
- ``TPIConfig``: which variant and memory one layer uses (checked on construction).
- ``TPIAttention``: the cumulative-sum implementation, ``(B, T, D) -> (B, T, D)``.
- ``tpi_naive``: the same formula as an explicit O(T^2) sum over every query's past (the test reference).
- ``RoPEAttention``: causal softmax attention with rotary positions and the same parameter count as
  single-omega
  TPI (``4 * D^2``, no biases), so the two compare block for block.

The phase variants differ only in the query phase (the key phase is always ``cumsum(omega(x))``):
``single`` uses the key phase; ``decoupled`` a second ``cumsum(omega_q(x))``; ``offset`` the key phase plus a
learned, un-accumulated ``offset(x)``; ``constrained`` ``cumsum(omega(x) + 0.1 * adjust(x))``.

Phases are accumulated in float64 and wrapped to [-pi, pi) before the cosine and sine, so sequences far longer
than training keep their precision; the memory is kept in real form (cosine and sine parts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

VARIANTS = ("single", "decoupled", "offset", "constrained")
MEMORIES = ("unbounded", "window", "decay")
CONSTRAINED_SCALE = 0.1


@dataclass(frozen=True)
class TPIConfig:
    """One TPI layer's variant (``VARIANTS``), memory (``MEMORIES``) and hard-window length."""

    variant: str = "single"
    memory: str = "unbounded"
    window: int = 64

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown TPI variant {self.variant!r}; expected one of {VARIANTS}")
        if self.memory not in MEMORIES:
            raise ValueError(f"unknown TPI memory {self.memory!r}; expected one of {MEMORIES}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"TPI window must be an integer >= 1, got {self.window!r}")


def wrapped_phase(omega: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """Causal phase ``cumsum(omega)`` over time, in float64, plus ``shift``, wrapped to [-pi, pi).

    omega: (B, T, D); shift: broadcastable to (B, T, D), added after the sum (an inserted phase). Returns
    (B, T, D)
    in float64.
    """
    phi = torch.cumsum(omega.double(), dim=1)
    if shift is not None:
        phi = phi + shift.double()
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


class TPIAttention(nn.Module):
    """Temporal phase integration over ``dim`` channels: ``(B, T, D) -> (B, T, D)``.

    ``phase_shift`` (broadcastable to (B, T, D), radians) is added to every accumulated phase, keys and
    queries
    alike: the TPI analogue of inserting a gap between tokens.
    """

    def __init__(self, dim: int, config: TPIConfig | None = None) -> None:
        super().__init__()
        self.config = config or TPIConfig()
        self.dim = dim
        self.value = nn.Linear(dim, dim, bias=False)
        self.omega = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(2 * dim, dim, bias=False)
        variant = self.config.variant
        if variant == "decoupled":
            self.omega_query = nn.Linear(dim, dim, bias=False)
        elif variant == "offset":
            self.offset = nn.Linear(dim, dim, bias=False)
        elif variant == "constrained":
            self.adjust = nn.Linear(dim, dim, bias=False)
        if self.config.memory == "decay":
            # lambda = 0.5 + 0.5 * sigmoid(3) = 0.976: an initial memory 1 / (1 - lambda) of 42 bytes
            self.decay_logit = nn.Parameter(torch.full((dim,), 3.0))
        for lin in (
            self.omega,
            *(getattr(self, n) for n in ("omega_query", "offset", "adjust") if hasattr(self, n)),
        ):
            nn.init.normal_(lin.weight, std=0.1 / math.sqrt(dim))

    def decay(self) -> torch.Tensor:
        """Per-channel decay factor in (0.5, 1): (D,). Only for ``memory="decay"``."""
        return 0.5 + 0.5 * torch.sigmoid(self.decay_logit)

    def phases(
        self, x: torch.Tensor, phase_shift: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Key and query phases, each (B, T, D) float64 in [-pi, pi), for input x (B, T, D)."""
        omega = self.omega(x)
        phi_key = wrapped_phase(omega, phase_shift)
        variant = self.config.variant
        if variant == "single":
            return phi_key, phi_key
        if variant == "decoupled":
            return phi_key, wrapped_phase(self.omega_query(x), phase_shift)
        if variant == "offset":
            return phi_key, phi_key + self.offset(x).double()
        return phi_key, wrapped_phase(omega + CONSTRAINED_SCALE * self.adjust(x), phase_shift)

    def weights_total(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """The summed memory weight per step, ``sum_s w(t, s)``: (T, 1) or (T, D) for decay."""
        t = torch.arange(1, length + 1, dtype=like.dtype, device=like.device)
        memory = self.config.memory
        if memory == "unbounded":
            return t[:, None]
        if memory == "window":
            return t.clamp(max=self.config.window)[:, None]
        lam = self.decay().to(like.dtype)
        return (1 - lam[None, :] ** t[:, None]) / (1 - lam[None, :])

    def accumulate(self, z: torch.Tensor) -> torch.Tensor:
        """Causal weighted sum over time of z (B, T, C): ``sum_{s<=t} w(t, s) z_s``, same shape."""
        memory = self.config.memory
        if memory == "unbounded":
            return torch.cumsum(z, dim=1)
        if memory == "window":
            total = torch.cumsum(z, dim=1)
            w = self.config.window
            if z.shape[1] <= w:
                return total
            return torch.cat([total[:, :w], total[:, w:] - total[:, :-w]], dim=1)
        return decayed_cumsum(z, self.decay().to(z.dtype).repeat(z.shape[-1] // self.dim))

    def forward(self, x: torch.Tensor, phase_shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D)."""
        phi_key, phi_query = self.phases(x, phase_shift)
        v = self.value(x).double()
        stored = torch.cat([v * torch.cos(phi_key), v * torch.sin(phi_key)], dim=-1)  # (B, T, 2D)
        mem_re, mem_im = self.accumulate(stored).split(self.dim, dim=-1)
        cos_q, sin_q = torch.cos(phi_query), torch.sin(phi_query)
        norm = self.weights_total(x.shape[1], v)
        re = (mem_re * cos_q + mem_im * sin_q) / norm  # Re(memory * exp(-i phi_q))
        im = (mem_im * cos_q - mem_re * sin_q) / norm
        return self.out(torch.cat([re, im], dim=-1).to(x.dtype))


def decayed_cumsum(z: torch.Tensor, lam: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """``m_t = lam * m_{t-1} + z_t`` over time, in chunks so no power of ``1/lam`` exceeds ``2**chunk``.

    z: (B, T, C); lam: (C,) in (0.5, 1). Returns (B, T, C).
    """
    out = []
    carry = torch.zeros_like(z[:, 0])
    for start in range(0, z.shape[1], chunk):
        part = z[:, start : start + chunk]
        k = torch.arange(part.shape[1], dtype=z.dtype, device=z.device)[:, None]
        up, down = lam ** (-k), lam ** (k + 1)  # (L, C)
        summed = torch.cumsum(part * up, dim=1) * (lam**k) + carry[:, None] * down
        out.append(summed)
        carry = summed[:, -1]
    return torch.cat(out, dim=1)


def tpi_naive(layer: TPIAttention, x: torch.Tensor, phase_shift: torch.Tensor | None = None) -> torch.Tensor:
    """The TPI formula as an explicit sum over each query's past, O(T^2): (B, T, D) -> (B, T, D).

    Independent of the cumulative sums: the phases are summed step by step and every weight ``w(t, s)`` is
    written out (1, ``t - s < window``, or ``lam ** (t - s)``).
    """
    batch, length, dim = x.shape
    omega = layer.omega(x).double()
    v = layer.value(x).double()
    shift = torch.zeros(1, dtype=torch.float64) if phase_shift is None else phase_shift.double()
    shift = torch.broadcast_to(shift, (batch, length, dim))

    def running(w: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(batch, dim, dtype=torch.float64)
        phases = []
        for t in range(length):
            total = total + w[:, t]
            phases.append(total + shift[:, t])
        return torch.stack(phases, dim=1)

    phi_key = running(omega)
    variant = layer.config.variant
    if variant == "single":
        phi_query = phi_key
    elif variant == "decoupled":
        phi_query = running(layer.omega_query(x).double())
    elif variant == "offset":
        phi_query = phi_key + layer.offset(x).double()
    else:
        phi_query = running(omega + CONSTRAINED_SCALE * layer.adjust(x).double())
    memory = layer.config.memory
    lam = layer.decay().double() if memory == "decay" else None
    outs = []
    for t in range(length):
        re = torch.zeros(batch, dim, dtype=torch.float64)
        im = torch.zeros(batch, dim, dtype=torch.float64)
        total = torch.zeros(dim, dtype=torch.float64)
        for s in range(t + 1):
            if memory == "window" and t - s >= layer.config.window:
                continue
            w = lam ** (t - s) if lam is not None else torch.ones(dim, dtype=torch.float64)
            delta = phi_key[:, s] - phi_query[:, t]
            re = re + w * v[:, s] * torch.cos(delta)
            im = im + w * v[:, s] * torch.sin(delta)
            total = total + w
        outs.append(torch.cat([re / total, im / total], dim=-1))
    return layer.out(torch.stack(outs, dim=1).to(x.dtype))


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary embedding of x (B, H, T, hd) at (possibly fractional) positions (B, T) or (T,)."""
    half = x.shape[-1] // 2
    freq = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)  # (hd/2,)
    angle = positions.to(torch.float32)[..., None] * freq  # (B?, T, hd/2)
    if angle.dim() == 3:
        angle = angle[:, None]
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class RoPEAttention(nn.Module):
    """Causal multi-head softmax attention with rotary positions: ``(B, T, D) -> (B, T, D)``, ``4 * D^2``
    weights."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim {dim} must split into {heads} heads of even size")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D); positions: (B, T) or (T,), default ``0..T-1``. Returns (B, T, D)."""
        batch, length, dim = x.shape
        if positions is None:
            positions = torch.arange(length, device=x.device)
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, positions), rotate(k, positions)  # (B, H, T, hd)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))
