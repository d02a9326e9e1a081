"""Naive reference implementations: what each generator computes, by plain uncached full recomputation.

These are the independent paths that tests check the generators against, that the benchmarks time as the
baseline, and that the notebooks compare with. Each runs one full forward pass of the whole sequence
(:meth:`tempo_lab.forward.DecodingCore.full`, no cache: the model's own causal masks, or the layout's
explicit one) per result.

Contents: :func:`next_logits` (one sequence, one pass), :func:`retroactive_naive`, :func:`compressed_naive`,
:func:`parallel_distributions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tempo_lab import masks, positions
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel


def next_logits(
    lm: LoadedModel, input_ids: torch.Tensor, layout: Layout, *, core: DecodingCore | None = None
) -> torch.Tensor:
    """Logits ``(vocab,)`` after the last token of ``input_ids`` ``(1, n)`` laid out by ``layout``, from one
    uncached pass. Pass ``core`` to reuse one :class:`DecodingCore` across calls (a loop of them, as the
    baselines below run)."""
    return (core or DecodingCore(lm)).full(input_ids, layout)[0, -1]


def retroactive_naive(lm: LoadedModel, prompt: str, token_id: int, gaps: Sequence[float]) -> torch.Tensor:
    """The naive retroactive exploration: one full uncached forward pass of prompt + token per gap.

    Returns the next-token logits ``(P, vocab)``, equal (to float tolerance) to
    :meth:`RetroactivePositionGenerator.explore`'s ``logits``.
    """
    _, ids = lm.encode_prompt(prompt)
    t = ids.shape[1]
    seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], 1)
    core = DecodingCore(lm)
    return torch.stack([next_logits(lm, seq, Layout(positions.appended(t, t + g)), core=core) for g in gaps])


def compressed_naive(
    lm: LoadedModel, prompt: str, candidate_ids: Sequence[int], gap: float, path_length: int
) -> list[list[int]]:
    """The naive compressed-thought expansion: each candidate's path grown greedily, one full uncached forward
    pass per new token (the prototype's method). Returns the token ids of each path, candidate first; equal to
    :meth:`CompressedThoughtGenerator.generate`'s greedy paths."""
    _, ids = lm.encode_prompt(prompt)
    t = ids.shape[1]
    eos = lm.tokenizer.eos_token_id
    core = DecodingCore(lm)
    out = []
    for cand in candidate_ids:
        path = [int(cand)]
        while len(path) <= path_length and path[-1] != eos:
            seq = torch.cat([ids, torch.tensor([path], device=ids.device)], 1)
            layout = Layout(positions.with_gap(t, len(path), gap))
            path.append(int(next_logits(lm, seq, layout, core=core).argmax()))
        out.append(path)
    return out


def parallel_distributions(lm: LoadedModel, result) -> list[torch.Tensor]:
    """Each step's next-token distribution ``(vocab,)`` of a
    :class:`~tempo_lab.generators.parallel.ParallelResult`, rebuilt from one uncached forward of the whole
    result sequence with the full mask rebuilt from its labels: step 0 from the last prompt row, step ``k``
    from the rows of set ``k - 1`` (mixed by the renormalised member probabilities, or the last member)."""
    mask = masks.parallel_mask(result.labels, result.mode, dtype=lm.dtype)
    logits = DecodingCore(lm).full(result.input_ids, Layout(result.positions, mask))
    rows = torch.softmax(logits[0], -1)  # (N, vocab)
    out = [rows[result.prompt_len - 1]]
    for k, step in enumerate(result.steps[:-1]):
        members = rows[result.labels == k]  # (size_k, vocab), in feeding order
        if result.next_dist == "mixture":
            w = torch.tensor(step.probs, dtype=rows.dtype)
            out.append((w / w.sum()) @ members)
        else:
            out.append(members[-1])
    return out
