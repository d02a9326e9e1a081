"""Choosing tokens from a distribution: threshold sets, greedy or seeded sampling, top-k lists.

Contents: :func:`select_tokens` (every token above a threshold, capped), :func:`choose_next` (argmax or a
seeded draw, one per row), :func:`seeded_generator`, :func:`top_tokens`.
"""

from __future__ import annotations

import torch

from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks


def select_tokens(
    probs: torch.Tensor, threshold: float, max_count: int, top_p: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every token with probability ``>= threshold``, most probable first, at most ``max_count`` of them and
    at least one (the argmax, even below the threshold); with ``top_p``, only the most probable members whose
    cumulative probability first reaches ``top_p`` (a top-p cap). ``probs``: ``(vocab,)``. Returns
    ``(ids, probs)``, each ``(k,)`` with ``1 <= k <= max_count``."""
    top_prob, top_i = probs.topk(min(max_count, probs.shape[-1]))
    k = max(1, int((top_prob >= threshold).sum()))
    if top_p is not None:
        before = torch.cumsum(top_prob, 0) - top_prob  # mass of the members ranked above each one
        k = min(k, max(1, int((before < top_p).sum())))
    return top_i[:k], top_prob[:k]


def choose_next(
    logits: torch.Tensor,
    *,
    sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row of ``logits`` ``(batch, vocab)``: the argmax, or a draw from ``softmax(logits / T)``
    with ``generator`` (seeded by the caller). Returns ``(batch,)`` int64 ids."""
    if not sample:
        return logits.argmax(-1)
    probs = torch.softmax(widened(logits) / temperature, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (sampling never touches the global RNG)."""
    return torch.Generator().manual_seed(checks.seed(seed))


def top_tokens(lm: LoadedModel, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable tokens of ``probs`` ``(vocab,)`` as ``(text, probability)``."""
    p, i = probs.topk(min(k, probs.shape[-1]))
    return [(lm.token_str(t), float(v)) for t, v in zip(i.tolist(), p.tolist(), strict=True)]
