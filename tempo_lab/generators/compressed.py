"""Compressed thoughts: candidate next tokens placed after a position gap, each expanded into a short path.

From the prompt's next-token distribution the generator keeps every token with probability ``>= threshold``
(most probable first, at most ``max_candidates``, at least the argmax). Each candidate is placed at position
``prompt_len + gap`` and continued for ``path_length`` tokens at the following positions
``prompt_len + gap + 1, + 2, …``. All paths advance together: the prompt cache is branched into one expanded
view per candidate and each step is one cached forward pass of the whole batch (``q = 1`` per path).

A path that produces the end-of-sequence token ends there (the EOS is its last token); the batch stops early
once every path has ended. The steps run in the shared loop (:func:`tempo_lab.generators.loop.decode`).

Contents: :class:`CompressedThoughtGenerator`, its result :class:`CompressedResult` of :class:`ThoughtPath`
per :class:`Candidate`; :class:`CompressedRun` (a planned run) and :class:`PathPolicy` (its steps). The
options are :class:`~tempo_lab.generators.options.CompressedOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch

from tempo_lab.forward import Prefix, branch
from tempo_lab.generators.loop import Feed, Generator, decode
from tempo_lab.generators.options import CompressedOptions, resolve
from tempo_lab.generators.selection import choose_next, seeded_generator, select_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks
from tempo_lab.summaries import entropy


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
    ``text`` decodes the whole path; ``prefix_texts[j]`` decodes its first ``j + 1`` tokens (what a shorter
    path reads). ``logits``: ``(len(token_ids), vocab)`` float, row ``j`` the distribution that chose token
    ``j`` (only with ``keep_logits=True``).
    """

    candidate: Candidate
    token_ids: list[int]
    tokens: list[str]
    text: str
    step_probs: list[float]
    positions: list[float]
    ended_by_eos: bool = False
    logits: torch.Tensor | None = field(default=None, repr=False)
    prefix_texts: list[str] = field(default_factory=list, repr=False)

    def truncated(self, n_tokens: int) -> ThoughtPath:
        """The first ``n_tokens >= 1`` tokens of the path (the candidate included)."""
        keep = slice(0, n_tokens)
        return replace(
            self,
            token_ids=self.token_ids[keep],
            tokens=self.tokens[keep],
            text=self.prefix_texts[min(n_tokens, len(self.prefix_texts)) - 1],
            prefix_texts=self.prefix_texts[keep],
            step_probs=self.step_probs[keep],
            positions=self.positions[keep],
            ended_by_eos=self.ended_by_eos and len(self.token_ids) <= n_tokens,
            logits=None if self.logits is None else self.logits[keep],
        )


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
    entropy: float | None = None  # of the prompt's next-token distribution, in nats

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

    def paths_within(self, threshold: float, path_length: int) -> list[ThoughtPath]:
        """The paths a run with a higher ``threshold`` and a shorter ``path_length`` would give: candidates
        with probability ``>= threshold`` (always at least the first), each cut to its candidate plus
        ``path_length`` tokens. Valid for greedy runs (``sample=False``): a greedy path's prefix does not
        depend on its length."""
        if self.sample:
            raise ValueError("cutting paths is only valid for greedy runs (sample=False)")
        kept = [p for p in self.paths if p.candidate.prob >= threshold] or self.paths[:1]
        return [p.truncated(path_length + 1) for p in kept]


class PathPolicy:
    """Advance every path by one token per step (``q = 1`` per branch) until all have produced EOS.

    Made from the prompt's next-token logits: it selects the candidates, fixes the gap (``"entropy"``
    resolved) and the paths' positions. ``n``: paths (batch rows); ``gap``, ``positions`` (one per path
    token, the candidate first), ``entropy`` (of the prompt's distribution, nats)."""

    def __init__(self, run: CompressedRun, next_logits: torch.Tensor):
        o, t = run.options, run.input_ids.shape[1]
        probs = torch.softmax(widened(next_logits), -1)
        self.entropy = float(entropy(probs))
        self.gap = float(min(o.max_gap, round(o.gap_per_nat * self.entropy))) if o.gap == "entropy" else o.gap
        self.positions = [t + self.gap + j for j in range(o.path_length + 1)]
        first, first_probs = select_tokens(probs, o.threshold, o.max_candidates)
        n = first.shape[0]
        self.n, self.eos, self.options = n, run.generator.lm.tokenizer.eos_token_id, o
        self.generator = seeded_generator(o.seed)
        self.tokens = [first]  # each (n,)
        self.probs = [first_probs]  # each (n,)
        self.logits = [next_logits.expand(n, -1)] if o.keep_logits else None  # each (n, vocab)
        self.ended = first == self.eos if self.eos is not None else torch.zeros(n, dtype=torch.bool)

    def propose(self, step: int) -> Feed | None:
        if bool(self.ended.all()):
            return None
        return Feed(self.tokens[-1].view(self.n, 1), Layout(torch.full((self.n, 1), self.positions[step])))

    def accept(self, step: int, logits: torch.Tensor) -> None:
        logits = logits[:, -1]  # (n, vocab)
        o = self.options
        nxt = choose_next(logits, sample=o.sample, temperature=o.temperature, generator=self.generator)
        self.probs.append(torch.softmax(logits, -1).gather(-1, nxt[:, None])[:, 0])
        self.tokens.append(nxt)
        if self.logits is not None:
            self.logits.append(logits)
        if self.eos is not None:
            self.ended = self.ended | (nxt == self.eos)


@dataclass
class CompressedRun:
    """A checked, encoded compressed-thought run that has not started: ``policy`` selects the candidates
    from the prompt's next-token logits, ``result`` turns the stepped policy into a
    :class:`CompressedResult`."""

    generator: CompressedThoughtGenerator
    prompt: str
    input_ids: torch.Tensor  # (1, T)
    options: CompressedOptions

    @property
    def path_length(self) -> int:
        return self.options.path_length

    def policy(self, next_logits: torch.Tensor) -> PathPolicy:
        """The path policy after the prompt whose last-token logits are ``next_logits`` ``(vocab,)``; it
        feeds a batch of ``policy.n`` paths (one per candidate)."""
        return PathPolicy(self, next_logits)

    def result(self, policy: PathPolicy) -> CompressedResult:
        lm, o = self.generator.lm, self.options
        candidates = [
            Candidate(token_id=int(i), token=lm.token_str(int(i)), prob=float(p))
            for i, p in zip(policy.tokens[0].tolist(), policy.probs[0].tolist(), strict=True)
        ]
        tokens = torch.stack(policy.tokens, 1).tolist()  # (n, L)
        probs = torch.stack(policy.probs, 1).tolist()
        logits = torch.stack(policy.logits, 1) if policy.logits is not None else None  # (n, L, vocab)
        paths = [
            _path(lm, c, tokens[b], probs[b], policy.positions, None if logits is None else logits[b])
            for b, c in enumerate(candidates)
        ]
        return CompressedResult(
            prompt=self.prompt,
            prompt_len=self.input_ids.shape[1],
            gap=policy.gap,
            threshold=o.threshold,
            sample=o.sample,
            seed=o.seed,
            candidates=candidates,
            paths=paths,
            entropy=policy.entropy,
        )


class CompressedThoughtGenerator(Generator):
    """Expand the likely next tokens of a prompt, each placed after a position gap, as one batch of paths."""

    def generate(
        self,
        prompt: str | torch.Tensor,
        options: CompressedOptions | None = None,
        *,
        progress: bool = True,
        prefix: Prefix | None = None,
        **changes: Any,
    ) -> CompressedResult:
        """Select candidates and expand each into a path of ``path_length`` more tokens.

        Args:
            prompt: text (or token ids ``(1, T)``).
            options: a :class:`~tempo_lab.generators.options.CompressedOptions`; its fields may also be given
                (or changed) as keywords:

                - ``gap``: positions skipped before the candidate (``>= 0``, fractional allowed on rotary
                  models): the candidate sits at ``prompt_len + gap``. ``"entropy"``: a gap chosen from the
                  model's uncertainty, ``round(gap_per_nat * H)`` for the entropy ``H`` (nats) of the
                  prompt's next-token distribution, at most ``max_gap``: the less sure the model, the further
                  the thought is placed.
                - ``threshold``: keep candidates with probability ``>= threshold``, in ``(0, 1]``;
                  ``max_candidates``: at most this many (the most probable), always at least the argmax.
                - ``path_length``: tokens generated after each candidate (``>= 1``): that many cached steps.
                - ``sample``: draw continuation tokens from ``softmax(logits / temperature)`` instead of the
                  argmax, with a ``torch.Generator`` seeded by ``seed`` (the global RNG is not touched).
                - ``keep_logits``: store each path's per-token logits (``(path_length + 1, vocab)`` per
                  path).
            progress: show a progress bar over the steps.
            prefix: the prompt already prefilled (:meth:`DecodingCore.prefill` of these ids): skips the
                prefill; the paths branch off its cache, which is left as it was.
        """
        run = self.plan(prompt, options, **changes)
        if prefix is None:
            prefix = self.core.prefill(run.input_ids)
        elif not torch.equal(prefix.input_ids.to(run.input_ids.device), run.input_ids):
            raise ValueError("the prefix given is not a prefill of this prompt")
        policy = run.policy(prefix.next_logits)
        cache = branch(prefix.cache, policy.n)
        decode(self.core, cache, policy, run.path_length, desc="compressed thoughts", progress=progress)
        return run.result(policy)

    def plan(
        self, prompt: str | torch.Tensor, options: CompressedOptions | None = None, **changes: Any
    ) -> CompressedRun:
        """Check the options of :meth:`generate` for this model and encode the prompt, without running
        anything (see :meth:`ParallelTokenGenerator.plan
        <tempo_lab.generators.parallel.ParallelTokenGenerator.plan>`)."""
        o = resolve(CompressedOptions, options, changes)
        text, ids = self.lm.encode_prompt(prompt)
        t = ids.shape[1]
        if o.gap != "entropy":
            checks.integral_position(f"gap = {o.gap:g}", o.gap, self.core.integer_reason)
        checks.in_context(
            f"gap {o.furthest_gap:g} after a prompt of {t} tokens with paths of {o.path_length} more tokens",
            t + o.furthest_gap + o.path_length,
            self.lm.max_positions,
        )
        return CompressedRun(self, text, ids, o)


def _path(
    lm: LoadedModel,
    candidate: Candidate,
    ids: list[int],
    probs: list[float],
    positions: list[float],
    logits: torch.Tensor | None,
) -> ThoughtPath:
    """One row of the batch as a path, cut after its first end-of-sequence token."""
    eos = lm.tokenizer.eos_token_id
    length = ids.index(eos) + 1 if eos is not None and eos in ids else len(ids)
    ids = ids[:length]
    return ThoughtPath(
        candidate=candidate,
        token_ids=ids,
        tokens=[lm.token_str(i) for i in ids],
        text=lm.tokenizer.decode(ids),
        step_probs=probs[:length],
        positions=positions[:length],
        ended_by_eos=eos is not None and ids[-1] == eos,
        logits=None if logits is None else logits[:length],
        prefix_texts=[lm.tokenizer.decode(ids[: j + 1]) for j in range(length)],
    )
