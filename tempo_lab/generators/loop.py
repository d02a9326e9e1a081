"""The one decoding loop: a policy says what to feed, the core runs one cached step, the policy reads it.

Compressed thoughts and TEMPO parallel tokens differ only in what they feed at each step and what they do
with the logits; the loop, its progress bar and its stopping are shared:

    policy = MyPolicy(...)                       # propose(step) -> Feed | None; accept(step, logits)
    steps = decode(core, prefix.cache, policy, max_steps, desc="my generator")

Contents: :class:`Generator` (what every generator holds), :class:`Feed` (one step's input), :class:`Policy`
(the protocol), :func:`decode` (the loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel


class Generator:
    """The base of every generator: the loaded model ``lm`` and its :class:`~tempo_lab.forward.DecodingCore`
    ``core``."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.core = DecodingCore(lm)


@dataclass
class Feed:
    """What one cached step feeds: ``input_ids`` ``(batch, q)`` laid out by ``layout`` (its positions
    ``(batch, q)``; its mask ``None`` for causal order over every slot, or ``(batch, 1, q, cached + q)``)."""

    input_ids: torch.Tensor
    layout: Layout


class Policy(Protocol):
    """A generator's decisions, step by step."""

    def propose(self, step: int) -> Feed | None:
        """What to feed at ``step`` (0-based); ``None`` ends the run before feeding anything more."""

    def accept(self, step: int, logits: torch.Tensor) -> None:
        """Read the logits ``(batch, q, vocab)`` of what was fed at ``step``."""


def decode(
    core: DecodingCore,
    cache: DynamicCache,
    policy: Policy,
    max_steps: int,
    *,
    desc: str,
    progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> int:
    """Run up to ``max_steps`` cached steps on ``cache`` (which grows by each step's ``q`` slots).

    Stops early when ``policy.propose`` returns ``None``. Shows a progress bar over the steps unless
    ``progress=False``; ``on_step(steps done, max_steps)`` is called after every step (a live view's progress,
    or an exception that abandons a superseded run). Returns the number of steps fed.
    """
    fed = 0
    bar = tqdm(range(max_steps), desc=desc, disable=not progress, leave=False)
    try:
        for step in bar:
            feed = policy.propose(step)
            if feed is None:
                break
            logits = core.step(cache, feed.input_ids, feed.layout)
            policy.accept(step, logits)
            fed += 1
            if on_step is not None:
                on_step(fed, max_steps)
    finally:
        bar.close()
    return fed
