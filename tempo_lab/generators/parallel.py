"""TEMPO parallel tokens: every likely next token is kept, and all of them share one position.

Step ``k`` selects a *set* from the current next-token distribution: every token with probability
``>= threshold`` (most probable first, at most ``max_set_size``, at least the argmax). All members get the
same RoPE position ``prompt_len + k`` and **all of them are fed to the model in one cached step** (``q`` = set
size), so each occupies its own cache slot. The mask for the new rows comes from
:func:`tempo_lab.masks.parallel_mask` over the labels of every slot so far:

- ``intraset="isolated"``: a member sees the prompt, every earlier set and itself, but not the other members
  of its own set;
- ``intraset="visible"``: plain causal order over slots (a member sees the members fed before it).

Later tokens see every member of earlier sets in both modes.

The distribution for the next step (``next_dist``):

- ``"mixture"`` (default): ``sum_i w_i * softmax(logits_i)`` over the members' rows, with ``w_i`` the members'
  selection probabilities renormalised to sum to 1;
- ``"last"``: the row of the last (least probable) member alone.

Stopping: after ``max_steps`` sets, or as soon as a set contains the end-of-sequence token. Such a set is
recorded (with its position) but **not fed**: it has no cache slots, and generation stops. Every other set is
fed, the last one included, so every recorded non-EOS set has cache slots (and attention rows when captured).

Sampling (``sample=True``): the sets are still chosen by the threshold; only when no token reaches it, the one
fallback member is drawn from ``softmax(logits / temperature)`` (seeded ``torch.Generator``) instead of being
the argmax. With ``sample=False`` (default) the run is fully deterministic.

Replay (``forced_sets``): feed given sets instead of selecting them (e.g. the sets of an isolated run,
replayed in visible mode, to compare the two modes on identical tokens). Each step's ``probs`` are then the
model's probabilities of the given members, used as the mixture weights as usual.

The steps run in the shared loop (:func:`tempo_lab.generators.loop.decode`).

Contents: :class:`ParallelTokenGenerator`, its result :class:`ParallelResult` of :class:`ParallelStep`,
:func:`bracket_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from transformers import DynamicCache

from tempo_lab.capture import AttentionRecord, capture_attention
from tempo_lab.generators.loop import Generator, decode
from tempo_lab.generators.options import ParallelOptions, Pruning, resolve
from tempo_lab.generators.sets import ParallelStep, SetPolicy
from tempo_lab.loaded import widened
from tempo_lab.plumbing import checks

SET_MARKS = str.maketrans({"\n": "↵", "\r": "⏎", "\t": "⇥"})  # whitespace inside a bracket, made visible


@dataclass
class ParallelResult:
    """A TEMPO run.

    ``input_ids``, ``positions``: ``(1, N)`` for every slot fed to the model (the prompt, then each fed set's
    members in order); ``labels``: ``(N,)``, ``-1`` for prompt slots and ``k`` for the members of set ``k``
    (:func:`tempo_lab.masks.set_labels` semantics). ``text``: the prompt followed by the sets in bracket
    notation, ``"The cat [sat/jumped] on"`` (pruned members between tildes; :attr:`pruned_text` leaves them
    out). ``attention`` (with ``capture=True``): ``passes[0]`` is the prefill ``(1, heads, T, T)``,
    ``passes[1 + k]`` the feed of set ``k`` ``(1, heads, size_k, slots so far)``. ``later``: what later
    tokens saw of each set; ``hidden_after``: ``(N,)``, per slot the last step whose queries could see it
    (:data:`tempo_lab.masks.NEVER` unless pruned). ``stop``: ``"eos"`` or ``"max_steps"``.
    """

    prompt: str
    prompt_len: int
    mode: str
    next_dist: str
    threshold: float | Callable[[int], float]
    steps: list[ParallelStep]
    input_ids: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor
    text: str
    stop: str
    attention: AttentionRecord | None = None
    later: str = "all"
    hidden_after: torch.Tensor | None = None

    @property
    def pruned_text(self) -> str:
        """The bracket text with the pruned members left out."""
        kept = [[t for t, cut in zip(s.tokens, s.pruned or [False] * s.size, strict=True) if not cut]
                for s in self.steps]  # fmt: skip
        return bracket_text(self.prompt, kept)

    @property
    def set_sizes(self) -> list[int]:
        """Sizes of the fed sets, in order."""
        return [s.size for s in self.steps if s.fed]

    def to_frame(self) -> pd.DataFrame:
        """One row per step: position, size, members ("sat/jumped"), their probabilities, slots."""
        return pd.DataFrame(
            [
                {
                    "step": k,
                    "position": s.position,
                    "size": s.size,
                    "tokens": "/".join(s.tokens),
                    "probs": [round(p, 4) for p in s.probs],
                    "mass": sum(s.probs),
                    "slots": s.slots,
                }
                for k, s in enumerate(self.steps)
            ]
        )

    def attention_map(self, layer: int | None = None, head: int | None = None) -> torch.Tensor:
        """Attention between all slots, ``(N, N)`` (row = query slot, column = key slot), assembled from the
        captured passes; averaged over the captured layers/heads unless ``layer``/``head`` (indices into the
        captured ones) pick one. Needs ``capture=True``."""
        if self.attention is None:
            raise ValueError("no attention was captured: run generate(..., capture=True)")
        n = self.input_ids.shape[1]
        out = torch.zeros(n, n)
        row = 0
        for k, layers in enumerate(self.attention.passes):
            q = layers[0].shape[-2]
            w = widened(self.attention.stacked(k, width=row + q))  # (layers, 1, heads, q, slots so far)
            w = w[layer : layer + 1] if layer is not None else w
            w = w[:, :, head : head + 1] if head is not None else w
            out[row : row + q, : row + q] = w.mean(dim=(0, 1, 2))
            row += q
        return out


def bracket_text(
    prompt: str, sets: Sequence[Sequence[str]], pruned: Sequence[Sequence[bool] | None] | None = None
) -> str:
    """TEMPO's bracket notation: one-member sets are plain text, larger ones ``[a/b/c]``; a pruned member is
    shown between tildes, ``[sat/~jumped~]``.

    A leading space shared by every member is written once before the bracket:
    ``bracket_text("The cat", [[" sat", " jumped"], [" on"]]) == "The cat [sat/jumped] on"``. Inside a bracket
    a line break or tab is drawn as a mark (``[./↵]``), so a set never breaks the line it sits on.
    """
    out = [prompt]
    for k, members in enumerate(sets):
        marks = (pruned[k] if pruned is not None else None) or [False] * len(members)
        if len(members) == 1:
            out.append(members[0])
            continue
        space = all(m.startswith(" ") for m in members)
        shown = [(m[1:] if space else m).translate(SET_MARKS) for m in members]
        shown = [f"~{m}~" if cut else m for m, cut in zip(shown, marks, strict=True)]
        out.append((" [" if space else "[") + "/".join(shown) + "]")
    return "".join(out)


@dataclass
class ParallelRun:
    """A checked, encoded TEMPO run that has not started: ``policy`` builds its step policy on a prefilled
    prompt, ``result`` turns the stepped policy into a :class:`ParallelResult`. ``thresholds``: each step's
    selection threshold; ``forced``: the replayed sets as id tensors (``None`` when selecting)."""

    generator: ParallelTokenGenerator
    prompt: str
    input_ids: torch.Tensor  # (1, T)
    options: ParallelOptions
    thresholds: list[float]
    forced: list[torch.Tensor] | None

    @property
    def n_steps(self) -> int:
        return self.options.n_steps

    def policy(
        self, cache: DynamicCache | None, next_logits: torch.Tensor, record: AttentionRecord | None = None
    ) -> SetPolicy:
        """The step policy after the prompt, whose last-token logits are ``next_logits`` ``(vocab,)``.
        ``cache``: the prompt's own cache (only a pruning recompute touches it)."""
        first = torch.softmax(widened(next_logits), -1)
        return SetPolicy(self.generator.core, cache, self.input_ids, self.options, self.thresholds,
                         self.forced, first, record)  # fmt: skip

    def result(self, policy: SetPolicy, attention: AttentionRecord | None = None) -> ParallelResult:
        o = self.options
        return ParallelResult(
            prompt=self.prompt,
            prompt_len=self.input_ids.shape[1],
            mode=o.intraset,
            next_dist=o.next_dist,
            threshold=o.threshold,
            steps=policy.steps,
            input_ids=policy.input_ids,
            positions=policy.positions,
            labels=torch.tensor(policy.labels),
            text=bracket_text(
                self.prompt, [s.tokens for s in policy.steps], [s.pruned for s in policy.steps]
            ),
            stop=policy.stop,
            attention=attention,
            later=o.later,
            hidden_after=torch.tensor(policy.hidden_after),
        )


class ParallelTokenGenerator(Generator):
    """TEMPO generation: sets of parallel tokens sharing one position, every member fed to the model."""

    def generate(
        self,
        prompt: str | torch.Tensor,
        options: ParallelOptions | None = None,
        *,
        capture: bool = False,
        capture_layers: Sequence[int] | None = None,
        progress: bool = True,
        on_step: Callable[[int, int], None] | None = None,
        **changes: Any,
    ) -> ParallelResult:
        """Generate up to ``max_steps`` parallel sets after ``prompt`` (see the module docstring).

        Args:
            prompt: text (or token ids ``(1, T)``).
            options: a :class:`~tempo_lab.generators.options.ParallelOptions`; its fields may also be given
                (or changed) as keywords:

                - ``threshold``: keep tokens with probability ``>= threshold``, in ``(0, 1]``; or a schedule,
                  a callable of the step (:mod:`tempo_lab.generators.schedules`), checked at every step
                  before the run. ``max_steps``: sets (positions) to generate; ``max_set_size``: members per
                  set at most (the most probable); ``top_p``: also cap each set at the most probable members
                  whose cumulative probability reaches it.
                - ``intraset``: what members of one set see of each other, ``"isolated"`` or ``"visible"``;
                  ``later``: what later tokens see of a set of two or more members, ``"all"``, ``"first"``
                  or ``"none"`` (:func:`tempo_lab.masks.parallel_allowed`).
                - ``next_dist``: ``"mixture"`` or ``"last"``.
                - ``prune``: retroactive pruning by attention (:class:`~tempo_lab.generators.Pruning`).
                - ``seed``, ``sample``, ``temperature``: see the module docstring (only with ``sample``).
                - ``forced_sets``: replay these sets (token ids or one-token texts, fed in the given order)
                  instead of selecting; ``max_steps``, ``threshold`` and ``max_set_size`` then play no part.
            capture: record attention of every forward pass (prefill and each step) into ``result.attention``.
            capture_layers: layers to record (``None`` = all).
            progress: show a progress bar over the steps.
            on_step: called as ``on_step(sets fed, max_steps)`` after every set (see
                :func:`tempo_lab.generators.loop.decode`).
        """
        run = self.plan(prompt, options, **changes)
        prune = run.options.prune
        if prune is not None and prune.recompute and capture:
            raise ValueError(
                "capture=True cannot be combined with a pruning recompute (it renumbers the slots)"
            )
        layers = capture_layers if capture or prune is None else prune.layers
        watching = capture or prune is not None
        context = capture_attention(self.lm.model, layers=layers) if watching else nullcontext()
        with context as record:
            prefix = self.core.prefill(run.input_ids)
            policy = run.policy(prefix.cache, prefix.next_logits, record)
            decode(
                self.core,
                prefix.cache,
                policy,
                run.n_steps,
                desc="parallel tokens",
                progress=progress,
                on_step=on_step,
            )
        return run.result(policy, record if capture else None)

    def plan(
        self, prompt: str | torch.Tensor, options: ParallelOptions | None = None, **changes: Any
    ) -> ParallelRun:
        """Check the options of :meth:`generate` for this model and encode the prompt, without running
        anything: the run's policy can then be stepped by :func:`~tempo_lab.generators.loop.decode` or,
        beside other prompts' runs, by :class:`~tempo_lab.generators.lockstep.Lockstep`."""
        o = resolve(ParallelOptions, options, changes)
        if o.prune is not None:
            self._check_pruning(o.prune)
        forced = None if o.forced_sets is None else self._forced(o.forced_sets)
        thresholds = o.thresholds()
        text, ids = self.lm.encode_prompt(prompt)
        t = ids.shape[1]
        checks.in_context(
            f"a prompt of {t} tokens with {o.n_steps} steps", t + o.n_steps - 1, self.lm.max_positions
        )
        return ParallelRun(self, text, ids, o, thresholds, forced)

    def _check_pruning(self, prune: Pruning) -> None:
        """The layers and heads a pruning averages must be the model's: refused naming the index."""
        config = self.lm.model.config.get_text_config(decoder=True)
        for name, chosen, size in (("layers", prune.layers, config.num_hidden_layers),
                                   ("heads", prune.heads, config.num_attention_heads)):  # fmt: skip
            if chosen is None:
                continue
            if isinstance(chosen, (str, int)) or not len(chosen):
                raise ValueError(f"Pruning {name} must be a list of indices or None, got {chosen!r}")
            for i, index in enumerate(chosen):
                checks.integer_in(f"Pruning {name}[{i}] (the model has {size})", index, 0, size - 1)

    def _forced(self, sets: Sequence[Sequence[int | str]]) -> list[torch.Tensor]:
        """Check replayed sets (non-empty, no repeated member, valid tokens) and return them as id tensors."""
        out = []
        for k, members in enumerate(sets):
            if isinstance(members, (str, int)) or len(members) == 0:
                raise ValueError(f"forced_sets[{k}] must be a non-empty list of tokens, got {members!r}")
            ids = [self.lm.token_id(m) for m in members]
            if len(set(ids)) != len(ids):
                raise ValueError(f"forced_sets[{k}] repeats a member: {list(members)!r}")
            out.append(torch.tensor(ids, dtype=torch.long))
        return out
