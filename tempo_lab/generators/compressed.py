"""Compressed thoughts: candidate next tokens placed after a position gap, each expanded into a short path.

From the prompt's next-token distribution the generator keeps every token with probability ``>= threshold``
(most probable first, at most ``max_candidates``, at least the argmax). Each candidate is placed at position
``prompt_len + gap`` and continued for ``path_length`` tokens at the following positions
``prompt_len + gap + 1, + 2, …``. All paths advance together: the prompt cache is branched into one expanded
view per candidate and each step is one cached forward pass of the whole batch (``q = 1`` per path).

A path that produces the end-of-sequence token ends there (the EOS is its last token); the batch stops early
once every path has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from tempo_lab import masks
from tempo_lab.generators.core import (
    DecodingCore,
    branch,
    check_count,
    check_nonnegative,
    check_positive,
    check_probability,
    choose_next,
    encode_prompt,
    seeded_generator,
    select_tokens,
)
from tempo_lab.models import LoadedModel


@dataclass
class Candidate:
    """A token chosen from the prompt's next-token distribution, with its probability there."""

    token_id: int
    token: str
    prob: float


@dataclass
class ThoughtPath:
    """One candidate and its continuation.

    ``token_ids``/``tokens``/``positions``/``step_probs`` have one entry per path token, the candidate first:
    ``positions[j] = prompt_len + gap + j``; ``step_probs[j]`` is the model's probability (temperature 1) of
    token ``j`` given everything before it (``step_probs[0]`` = the candidate's probability after the prompt).
    ``text`` decodes the whole path. ``logits``: ``(len(token_ids), vocab)`` float, row ``j`` the distribution
    that chose token ``j`` (only with ``keep_logits=True``).
    """

    candidate: Candidate
    token_ids: list[int]
    tokens: list[str]
    text: str
    step_probs: list[float]
    positions: list[float]
    ended_by_eos: bool = False
    logits: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class CompressedResult:
    """Every candidate's path after a gap of ``gap`` positions."""

    prompt: str
    prompt_len: int
    gap: float
    threshold: float
    sample: bool
    seed: int
    candidates: list[Candidate]
    paths: list[ThoughtPath]

    def to_frame(self) -> pd.DataFrame:
        """One row per path: candidate, its probability, path text, positions, mean step probability."""
        return pd.DataFrame(
            [
                {
                    "candidate": p.candidate.token,
                    "p_candidate": p.candidate.prob,
                    "text": p.text,
                    "n_tokens": len(p.token_ids),
                    "first_position": p.positions[0],
                    "last_position": p.positions[-1],
                    "mean_step_prob": sum(p.step_probs) / len(p.step_probs),
                    "ended_by_eos": p.ended_by_eos,
                }
                for p in self.paths
            ]
        )


class CompressedThoughtGenerator:
    """Expand the likely next tokens of a prompt, each placed after a position gap, as one batch of paths."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.core = DecodingCore(lm)

    def generate(
        self,
        prompt: str | torch.Tensor,
        *,
        gap: float = 5,
        threshold: float = 0.05,
        max_candidates: int = 5,
        path_length: int = 10,
        sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        keep_logits: bool = False,
        progress: bool = True,
    ) -> CompressedResult:
        """Select candidates and expand each into a path of ``path_length`` more tokens.

        Args:
            prompt: text (or token ids ``(1, T)``).
            gap: positions skipped before the candidate (``>= 0``, fractional allowed on rotary models): the
                candidate sits at ``prompt_len + gap``.
            threshold: keep candidates with probability ``>= threshold``, in ``(0, 1]``.
            max_candidates: at most this many candidates (the most probable); always at least the argmax.
            path_length: tokens generated after each candidate (``>= 1``): ``path_length`` cached steps.
            sample: draw continuation tokens from ``softmax(logits / temperature)`` instead of the argmax,
                with a ``torch.Generator`` seeded by ``seed`` (the global RNG is not touched).
            keep_logits: store each path's per-token logits (for checks; ``(path_length + 1, vocab)`` per
                path).
            progress: show a progress bar over the steps.
        """
        gap = check_nonnegative("gap", gap)
        threshold = check_probability("threshold", threshold)
        check_count("max_candidates", max_candidates)
        check_count("path_length", path_length)
        temperature = check_positive("temperature", temperature)
        generator = seeded_generator(seed)
        text, ids = encode_prompt(self.lm, prompt)
        t = ids.shape[1]
        pos_list = [t + gap + j for j in range(path_length + 1)]
        self.core.check_positions(torch.tensor([pos_list]))  # context and rotary checks, before model work

        prefix = self.core.prefill(ids)
        first_logits = prefix.next_logits
        cand_ids, cand_probs = select_tokens(torch.softmax(first_logits, -1), threshold, max_candidates)
        n = cand_ids.shape[0]
        eos = self.lm.tokenizer.eos_token_id

        cache = branch(prefix.cache, n)
        tokens = [cand_ids]  # each (n,)
        probs = [cand_probs]  # each (n,)
        kept = [first_logits.expand(n, -1)] if keep_logits else []
        ended = cand_ids == eos if eos is not None else torch.zeros(n, dtype=torch.bool)
        steps = tqdm(range(path_length), desc="compressed thoughts", disable=not progress, leave=False)
        for j in steps:
            if bool(ended.all()):
                break
            kv = t + j + 1
            logits = self.core.step(
                cache,
                tokens[-1].view(n, 1),
                torch.full((n, 1), pos_list[j]),
                masks.causal_mask(1, kv, dtype=self.lm.dtype),
            )[:, -1]  # (n, vocab)
            nxt = choose_next(logits, sample=sample, temperature=temperature, generator=generator)
            probs.append(torch.softmax(logits, -1).gather(-1, nxt[:, None])[:, 0])
            tokens.append(nxt)
            if keep_logits:
                kept.append(logits)
            if eos is not None:
                ended = ended | (nxt == eos)
        steps.close()

        tok = torch.stack(tokens, 1).tolist()  # (n, L)
        prb = torch.stack(probs, 1).tolist()
        lgt = torch.stack(kept, 1) if keep_logits else None  # (n, L, vocab)
        candidates = [
            Candidate(token_id=int(i), token=self.lm.token_str(int(i)), prob=float(p))
            for i, p in zip(cand_ids.tolist(), cand_probs.tolist(), strict=True)
        ]
        paths = []
        for b in range(n):
            length = len(tok[b])
            if eos is not None and eos in tok[b]:
                length = tok[b].index(eos) + 1
            path_ids = tok[b][:length]
            paths.append(
                ThoughtPath(
                    candidate=candidates[b],
                    token_ids=path_ids,
                    tokens=[self.lm.token_str(i) for i in path_ids],
                    text=self.lm.tokenizer.decode(path_ids),
                    step_probs=prb[b][:length],
                    positions=pos_list[:length],
                    ended_by_eos=eos is not None and path_ids[-1] == eos,
                    logits=None if lgt is None else lgt[b, :length],
                )
            )
        return CompressedResult(
            prompt=text,
            prompt_len=t,
            gap=gap,
            threshold=threshold,
            sample=sample,
            seed=seed,
            candidates=candidates,
            paths=paths,
        )
