"""Retroactive position assignment: one token, re-evaluated at many positions after the prompt.

The prompt is prefilled once. The token is then fed at every requested position in **one batched cached
step**: the prompt cache is branched into ``P + 1`` expanded views (no copy), each branch gets the same token
with its own position id, and one forward pass returns every branch's next-token distribution. The extra
branch is the *reference*: the token at position ``prompt_len`` (gap 0), against which every row's divergence
is measured. It is always computed in the same batch, whether or not ``prompt_len`` is among the requested
positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from tempo_lab import masks
from tempo_lab.generators.core import (
    DecodingCore,
    branch,
    check_count,
    check_nonnegative,
    encode_prompt,
    top_tokens,
)
from tempo_lab.models import LoadedModel

DEFAULT_GAPS: tuple[float, ...] = (0, 1, 2, 5, 10, 20, 50)


@dataclass
class RetroactiveResult:
    """The next-token distribution with ``token`` placed at each position.

    ``positions``/``gaps``: ``P`` floats, ``gap = position - prompt_len``. ``logits``/``probs``:
    ``(P, vocab)`` next-token logits / probabilities of each placement. ``top``: per placement, the ``top_k``
    tokens as ``(text, probability)``. ``reference``: ``(vocab,)``, the distribution at gap 0 (position
    ``prompt_len``).
    ``tv``: ``(P,)`` total variation ``0.5 * sum |p - p_ref|``; ``kl``: ``(P,)`` ``KL(p || p_ref)`` in nats.
    """

    prompt: str
    prompt_len: int
    token_id: int
    token: str
    positions: list[float]
    gaps: list[float]
    logits: torch.Tensor
    probs: torch.Tensor
    top: list[list[tuple[str, float]]]
    reference: torch.Tensor
    tv: torch.Tensor
    kl: torch.Tensor

    def to_frame(self) -> pd.DataFrame:
        """One row per position: position, gap, top-k tokens and probabilities, tv, kl, entropy."""
        rows = []
        entropy = -(self.probs * self.probs.clamp_min(1e-30).log()).sum(-1)
        for i, (p, g) in enumerate(zip(self.positions, self.gaps, strict=True)):
            row: dict[str, object] = {"position": p, "gap": g}
            for k, (text, prob) in enumerate(self.top[i], start=1):
                row[f"top{k}"] = text
                row[f"p{k}"] = prob
            row.update(tv=float(self.tv[i]), kl=float(self.kl[i]), entropy=float(entropy[i]))
            rows.append(row)
        return pd.DataFrame(rows)


def divergences(probs: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total variation and ``KL(probs || reference)`` of each row of ``probs`` ``(P, vocab)`` from
    ``reference`` ``(vocab,)``; both ``(P,)``. Zero-probability terms of ``probs`` contribute 0 to the KL;
    rounding below 0 is clipped to 0."""
    tv = 0.5 * (probs - reference).abs().sum(-1)
    ratio = probs.clamp_min(1e-30).log() - reference.clamp_min(1e-30).log()
    kl = torch.where(probs > 0, probs * ratio, torch.zeros_like(probs)).sum(-1).clamp_min(0.0)
    return tv, kl


class RetroactivePositionGenerator:
    """Re-evaluate one token at many positions after a prompt: one prefill plus one batched forward pass."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.core = DecodingCore(lm)

    def resolve_positions(
        self, prompt_len: int, positions: Sequence[float] | None, gaps: Sequence[float] | None
    ) -> list[float]:
        """Absolute positions from ``positions`` or ``gaps`` (default :data:`DEFAULT_GAPS`), checked: each
        finite and ``>= prompt_len`` (the token comes after the prompt), inside the model's context, and
        fractional only on a rotary model. Raises ``ValueError`` naming the bad value."""
        if positions is not None and gaps is not None:
            raise ValueError(
                "give either positions (absolute) or gaps (relative to the prompt length), not both"
            )
        if positions is None:
            gaps = DEFAULT_GAPS if gaps is None else gaps
            if isinstance(gaps, (int, float)):
                gaps = [gaps]
            out = [prompt_len + check_nonnegative(f"gaps[{i}]", g) for i, g in enumerate(gaps)]
        else:
            if isinstance(positions, (int, float)):
                positions = [positions]
            out = []
            for i, p in enumerate(positions):
                check_nonnegative(f"positions[{i}]", p)
                if p < prompt_len:
                    raise ValueError(
                        f"positions[{i}] = {p} is inside the prompt (length {prompt_len}); the token must be "
                        f"placed at position >= {prompt_len}"
                    )
                out.append(float(p))
        if not out:
            raise ValueError("no positions to explore: give at least one position or gap")
        limit = self.lm.max_positions
        for i, p in enumerate(out):
            if limit is not None and p >= limit:
                raise ValueError(
                    f"position {p:g} (entry {i}) is past the model's context "
                    f"(max_position_embeddings = {limit})"
                )
            if not self.core.is_rotary and p != math.floor(p):
                raise ValueError(
                    f"position {p:g} (entry {i}) is fractional, but this model has no rotary position "
                    "embedding (it looks positions up in a learned table), so fractional positions are "
                    "undefined"
                )
        return out

    def explore(
        self,
        prompt: str | torch.Tensor,
        positions: Sequence[float] | None = None,
        *,
        gaps: Sequence[float] | None = None,
        token: str | int | None = None,
        top_k: int = 5,
    ) -> RetroactiveResult:
        """Place ``token`` right after ``prompt`` at each position and return every next-token distribution.

        Args:
            prompt: text (or token ids ``(1, T)``).
            positions: absolute positions, ``>= prompt_len``, fractional allowed on rotary models.
            gaps: instead of ``positions``: offsets from ``prompt_len`` (gap 0 = ordinary next position).
                Neither given: :data:`DEFAULT_GAPS`.
            token: the token to place (text of exactly one token, or an id); ``None`` = the prompt's greedy
                next token.
            top_k: how many top tokens to list per position.

        Cost: one prefill of the prompt and one forward pass of ``P + 1`` single-token branches over views of
        the prompt cache (the extra branch is the gap-0 reference).
        """
        check_count("top_k", top_k)
        text, ids = encode_prompt(self.lm, prompt)
        t = ids.shape[1]
        placed = self.resolve_positions(t, positions, gaps)
        token_id = None if token is None else self.lm.token_id(token)

        prefix = self.core.prefill(ids)
        if token_id is None:
            token_id = int(prefix.next_logits.argmax())
        n = len(placed) + 1  # the last branch is the gap-0 reference
        pos = torch.tensor([*placed, float(t)], dtype=torch.float32).view(n, 1)
        tok = torch.full((n, 1), token_id, dtype=torch.long, device=self.lm.device)
        mask = masks.causal_mask(1, t + 1, dtype=self.lm.dtype)  # the same row for every branch
        logits = self.core.step(branch(prefix.cache, n), tok, pos, mask)[:, -1]  # (n, vocab)
        probs = torch.softmax(logits, dim=-1)
        reference = probs[-1]
        tv, kl = divergences(probs[:-1], reference)
        return RetroactiveResult(
            prompt=text,
            prompt_len=t,
            token_id=token_id,
            token=self.lm.token_str(token_id),
            positions=placed,
            gaps=[p - t for p in placed],
            logits=logits[:-1],
            probs=probs[:-1],
            top=[top_tokens(self.lm, row, top_k) for row in probs[:-1]],
            reference=reference,
            tv=tv,
            kl=kl,
        )
