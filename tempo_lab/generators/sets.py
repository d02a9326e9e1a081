"""The TEMPO step policy: select a set, feed every member at one position, read the next distribution, and
prune members that later tokens ignore.

This is the policy :class:`~tempo_lab.generators.parallel.ParallelTokenGenerator` runs in the shared loop.
Per cache slot it keeps the token, its position, its set label and ``hidden_after`` (the last step whose
queries may still see it), and builds each step's mask from them (:func:`tempo_lab.masks.parallel_mask`).

**Retroactive pruning by attention** (TEMPO's own mechanism, :class:`~tempo_lab.generators.options.Pruning`):
after a set of two or more members is fed, the attention that the queries of the next ``window`` steps pay to
each member is summed (mean over the chosen layers and heads, mean over those queries) and normalised within
the set. A member whose
share is below ``threshold`` is pruned: from then on its mask column is closed to every later query, with no
recompute (the most attended member is always kept). With ``recompute=True`` the cache is instead rebuilt
from scratch without the pruned members, the exact "as if it had never been there" baseline.

Contents: :class:`ParallelStep` (one set, as the result keeps it), :class:`SetPolicy`. The pruning option is
:class:`~tempo_lab.generators.options.Pruning`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from tempo_lab import masks
from tempo_lab.capture import AttentionRecord
from tempo_lab.forward import DecodingCore
from tempo_lab.generators.loop import Feed
from tempo_lab.generators.options import ParallelOptions
from tempo_lab.generators.selection import choose_next, seeded_generator, select_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened


@dataclass
class ParallelStep:
    """One parallel set: members (most probable first), their probabilities in the distribution they were
    selected from, their shared position and the cache slots they occupy (empty for an unfed EOS set; with a
    pruning recompute, only the kept members'). ``distribution``: ``(vocab,)``, the distribution the set was
    selected from; ``threshold``: the selection threshold at this step. With pruning, once decided:
    ``attention_scores`` (each member's share of the next steps' attention), ``pruned`` (per member) and
    ``pruned_at`` (the step after which pruned members are hidden; ``None`` if none was pruned)."""

    token_ids: list[int]
    tokens: list[str]
    probs: list[float]
    position: float
    slots: list[int]
    distribution: torch.Tensor = field(repr=False)
    threshold: float | None = None
    attention_scores: list[float] | None = None
    pruned: list[bool] | None = None
    pruned_at: int | None = None

    @property
    def size(self) -> int:
        return len(self.token_ids)

    @property
    def fed(self) -> bool:
        return bool(self.slots)


class SetPolicy:
    """One TEMPO run's decisions (see the module docstring); ``steps`` holds the result's steps.

    ``cache``: the prompt's own cache (only a pruning recompute touches it); ``prefix_ids``: the prompt
    ``(1, T)``; ``options``: the run's typed options, with each step's ``thresholds`` and the replayed sets
    ``forced`` (id tensors, ``None`` when selecting), as :meth:`ParallelTokenGenerator.plan
    <tempo_lab.generators.parallel.ParallelTokenGenerator.plan>` checked them; ``first``: the prompt's
    next-token distribution ``(vocab,)``; ``record``: the attention captured so far (pruning reads it)."""

    def __init__(self, core: DecodingCore, cache: DynamicCache | None, prefix_ids: torch.Tensor,
                 options: ParallelOptions, thresholds: list[float], forced: list[torch.Tensor] | None,
                 first: torch.Tensor, record: AttentionRecord | None):  # fmt: skip
        self.core, self.lm, self.cache, self.record = core, core.lm, cache, record
        self.o, self.thresholds, self.forced = options, thresholds, forced
        self.t, self.dist = prefix_ids.shape[1], first
        self.generator = seeded_generator(options.seed)
        self.steps: list = []
        self.ids: list[int] = prefix_ids[0].tolist()  # per slot
        self.pos: list[float] = [float(p) for p in range(self.t)]
        self.labels: list[int] = [-1] * self.t
        self.hidden_after: list[int] = [masks.NEVER] * self.t
        self.attention: dict[int, torch.Tensor] = {}  # set -> summed attention of later queries per member
        self.queries: dict[int, int] = {}
        self.stop = "max_steps"

    # --- the loop's protocol ---

    def propose(self, step: int) -> Feed | None:
        members, probs = self._members(step)
        m, member_ids = members.shape[0], members.tolist()
        position = float(self.t + step)
        self.steps.append(ParallelStep(
            token_ids=member_ids, tokens=[self.lm.token_str(i) for i in member_ids], probs=probs.tolist(),
            position=position, slots=[], distribution=self.dist, threshold=self.thresholds[step],
        ))  # fmt: skip
        eos = self.lm.tokenizer.eos_token_id
        if eos is not None and eos in member_ids:
            self.stop = "eos"
            return None
        start = len(self.ids)
        self.steps[-1].slots = list(range(start, start + m))
        self.ids += member_ids
        self.pos += [position] * m
        self.labels += [step] * m
        self.hidden_after += [masks.NEVER] * m
        return Feed(members.view(1, m), Layout(torch.full((1, m), position), self._mask(q_len=m)))

    def accept(self, step: int, logits: torch.Tensor) -> None:
        self.dist = self._next_dist(torch.softmax(logits[0], -1))
        prune = self.o.prune
        if prune is None:
            return
        self._gather_attention(step)
        k = step - prune.window
        if k in self.attention:
            self._decide(k, step)

    # --- selection and masks ---

    def _members(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, probs)`` of this step's set, each ``(m,)``."""
        o, dist = self.o, self.dist
        if self.forced is not None:
            members = self.forced[step].to(dist.device)
            return members, dist[members]
        threshold = self.thresholds[step]
        members, probs = select_tokens(dist, threshold, o.max_set_size, o.top_p)
        if o.sample and float(probs[0]) < threshold:  # nothing reached it: draw the one fallback
            logits = dist.clamp_min(1e-30).log()[None]
            members = choose_next(logits, sample=True, temperature=o.temperature, generator=self.generator)
            probs = dist[members]
        return members, probs

    def _mask(self, q_len: int | None = None) -> torch.Tensor:
        return masks.parallel_mask(
            torch.tensor(self.labels), self.o.intraset, q_len, dtype=self.lm.dtype, later=self.o.later,
            hidden_after=torch.tensor(self.hidden_after),
        )  # fmt: skip

    def _next_dist(self, rows: torch.Tensor) -> torch.Tensor:
        """The next step's distribution from the last set's rows ``(m, vocab)`` (mixture or last member)."""
        probs = torch.tensor(self.steps[-1].probs, dtype=rows.dtype, device=rows.device)
        if self.o.next_dist == "last":
            return rows[-1]
        total = probs.sum()  # replayed members may all have underflowed to 0: weigh them equally
        weights = probs / total if total > 0 else torch.full_like(probs, 1.0 / probs.shape[0])
        return weights @ rows

    # --- pruning ---

    def _gather_attention(self, step: int) -> None:
        """Add this step's queries' attention on every set still inside its window."""
        prune, steps = self.o.prune, self.steps
        weights = widened(self.record.stacked(-1, width=len(self.ids)))  # (layers, 1, heads, q, slots)
        if prune.heads is not None:
            weights = weights[:, :, list(prune.heads)]
        per_slot = weights.mean(dim=(0, 1, 2)).sum(0)  # (slots,): summed over this step's queries
        q = weights.shape[-2]
        if steps[step].size >= 2 and steps[step].fed:
            self.attention[step], self.queries[step] = torch.zeros(steps[step].size), 0
        for k in list(self.attention):
            if k < step:
                self.attention[k] += per_slot[torch.tensor(steps[k].slots)].cpu()
                self.queries[k] += q

    def _decide(self, k: int, step: int) -> None:
        set_k = self.steps[k]
        share = self.attention.pop(k) / self.queries.pop(k)
        share = share / share.sum() if share.sum() > 0 else torch.full_like(share, 1 / share.numel())
        set_k.attention_scores = share.tolist()
        pruned = (share < self.o.prune.threshold) & (torch.arange(share.numel()) != share.argmax())
        set_k.pruned = pruned.tolist()
        if not pruned.any():
            return
        set_k.pruned_at = step
        slots = [s for s, p in zip(set_k.slots, set_k.pruned, strict=True) if p]
        if not self.o.prune.recompute:
            for s in slots:
                self.hidden_after[s] = step
            return
        self._rebuild_without(slots)

    def _rebuild_without(self, gone: list[int]) -> None:
        """Recompute the cache from scratch without the ``gone`` slots, renumbering every step's slots."""
        gone_slots = set(gone)
        keep = [s for s in range(len(self.ids)) if s not in gone_slots]
        new_index = {s: i for i, s in enumerate(keep)}
        for st in self.steps:
            st.slots = [new_index[s] for s in st.slots if s in new_index]
        for name in ("ids", "pos", "labels", "hidden_after"):
            setattr(self, name, [getattr(self, name)[s] for s in keep])
        fresh = DynamicCache(config=self.lm.model.config)
        layout = Layout(torch.tensor([self.pos]), self._mask())
        logits = self.core.forward(torch.tensor([self.ids]), layout, fresh)
        self.record.passes.pop()  # the rebuild is not a step: keep passes[-1] the latest step's
        self.cache.layers = fresh.layers  # the loop's cache object now holds the rebuilt layers
        last = self.steps[-1]
        self.dist = self._next_dist(torch.softmax(logits[0, last.slots], -1))

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.tensor([self.ids])

    @property
    def positions(self) -> torch.Tensor:
        return torch.tensor([self.pos])
