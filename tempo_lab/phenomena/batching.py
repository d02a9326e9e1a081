"""Batching helpers the phenomena's study measurements share: prompts stepped together through
:class:`~tempo_lab.generators.lockstep.Lockstep`.

Contents: :class:`Place` and :func:`placed` (tokens placed right after each prefix in one step),
:func:`tempo_runs` (TEMPO runs of many prompts in lockstep, each prompt prefilled once, attention maps from
the runs' own passes). Every model batches, sliding windows included
(the lockstep counts each row's window in its own slots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch

from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.generators.loop import Feed
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.phenomena.conditions import Batch


class Place:
    """One step: ``tokens`` at ``positions`` after the prefix, one branch (batch row) each, so each sees the
    prefix and itself, as :meth:`~tempo_lab.generators.RetroactivePositionGenerator.place` feeds them."""

    def __init__(self, tokens: Sequence[int], positions: Sequence[float]):
        self.n = len(tokens)
        ids, where = torch.tensor(list(tokens)), torch.tensor(list(positions), dtype=torch.float32)
        self.feed = Feed(ids.view(-1, 1), Layout(where.view(-1, 1)))
        self.logits: torch.Tensor | None = None

    def propose(self, step: int) -> Feed | None:
        return self.feed if step == 0 else None

    def accept(self, step: int, logits: torch.Tensor) -> None:
        self.logits = logits[:, -1]  # (n, vocab)


def placed(
    lm: LoadedModel, prefixes: Sequence[torch.Tensor], make: Callable[[int, torch.Tensor], tuple[list, list]]
) -> list[torch.Tensor]:
    """Prefill ``prefixes`` together, then place ``make(i, next_logits)`` = (tokens, positions) after each
    in one step, a branch per placement. Returns each prefix's placed probabilities ``(n_i, vocab)``."""
    lock = Lockstep(DecodingCore(lm))
    logits = lock.prefill(list(prefixes))
    policies = [Place(*make(k, lg)) for k, lg in enumerate(logits)]
    lock.expand([row for row, p in enumerate(policies) for _ in range(p.n)])
    lock.run(policies, 1, rows=[p.n for p in policies])
    return [torch.softmax(widened(p.logits), -1) for p in policies]


def tempo_runs(
    lm: LoadedModel, batch: Batch, plans: list[tuple[int, dict]], *, attention: bool = False
) -> tuple[list[ParallelResult], list[torch.Tensor] | None]:
    """Run TEMPO for every (batch position, options) in ``plans`` in lockstep: each prompt is prefilled
    once and branched into one row per plan. Returns the results and, with ``attention``, each run's
    ``(N, N)`` attention map (mean over layers and heads; ``attention_map()`` of a captured run), taken
    from the run's own passes (``None`` without)."""
    gen = ParallelTokenGenerator(lm)
    runs = [gen.plan(batch[b][1], **opts) for b, opts in plans]
    used = sorted({b for b, _ in plans})
    lock = Lockstep(gen.core)
    with capture_attention(lm.model) if attention else nullcontext() as record:
        logits = dict(zip(used, lock.prefill([batch[b][1] for b in used]), strict=True))
        lock.expand([used.index(b) for b, _ in plans])
        policies = [run.policy(None, logits[b]) for run, (b, _) in zip(runs, plans, strict=True)]
        lock.run(policies, max(run.n_steps for run in runs))
    results = [r.result(p) for r, p in zip(runs, policies, strict=True)]
    return results, lock.attention_maps(record) if attention else None
