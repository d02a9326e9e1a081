"""Experiment drivers: the runs a notebook compares, done in one call.

Each driver runs a generator several times with one thing varied and returns the results keyed by it.

Contents: :class:`ModePair` and :func:`parallel_pairs` (TEMPO runs in both intra-set modes, with a replay
on identical sets), :func:`compressed_runs` (compressed-thought runs over gaps), :func:`combined_exploration`
(compressed paths whose first tokens are re-explored at other gaps, seed 000), :func:`pruning_runs` (TEMPO
with retroactive pruning, mask-only and recompute), :func:`hidden_runs` (sets hidden from later tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from tempo_lab import checks
from tempo_lab.generators import (
    CompressedResult,
    CompressedThoughtGenerator,
    ParallelResult,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.labels import plain_number
from tempo_lab.metrics import divergences
from tempo_lab.models import LoadedModel


@dataclass
class ModePair:
    """One prompt and threshold in both intra-set modes.

    ``isolated``: the isolated run (attention captured). ``visible``: a free visible run (its own sets).
    ``replay``: the isolated run's sets replayed in visible mode (attention captured), so ``isolated`` and
    ``replay`` hold the same tokens in the same slots and differ only by the mask. ``slot_tokens``: the text
    of every slot of ``isolated``, prompt first.
    """

    threshold: float
    isolated: ParallelResult
    visible: ParallelResult
    replay: ParallelResult
    slot_tokens: list[str]

    def run(self, mode: str) -> ParallelResult:
        """The captured run of ``mode`` on the shared layout: ``isolated`` or ``visible`` (the replay)."""
        checks.choice("mode", mode, ("isolated", "visible"))
        return self.isolated if mode == "isolated" else self.replay


def parallel_pairs(
    lm: LoadedModel,
    prompt: str,
    thresholds: Sequence[float],
    *,
    max_steps: int = 15,
    max_set_size: int = 5,
) -> dict[float, ModePair]:
    """Run TEMPO generation in both modes at each threshold (see :class:`ModePair`); keys are the thresholds.

    Cost per threshold: three runs of at most ``max_steps`` cached steps each (isolated and the replay capture
    attention of every layer).
    """
    thresholds = [checks.probability(f"thresholds[{i}]", t) for i, t in enumerate(checks.as_list(thresholds))]
    if not thresholds:
        raise ValueError("give at least one threshold")
    gen = ParallelTokenGenerator(lm)
    common = {"max_steps": max_steps, "max_set_size": max_set_size, "progress": False}
    out: dict[float, ModePair] = {}
    for th in thresholds:
        iso = gen.generate(prompt, threshold=th, intraset="isolated", capture=True, **common)
        vis = gen.generate(prompt, threshold=th, intraset="visible", **common)
        sets = [s.token_ids for s in iso.steps if s.fed]
        replay = gen.generate(prompt, intraset="visible", forced_sets=sets, capture=True, progress=False)
        tokens = [lm.token_str(i) for i in iso.input_ids[0].tolist()]
        out[float(th)] = ModePair(float(th), iso, vis, replay, tokens)
    return out


def compressed_runs(
    lm: LoadedModel, prompt: str, gaps: Sequence[float], **options: Any
) -> dict[int | float, CompressedResult]:
    """Compressed-thought runs of ``prompt`` at each gap, with the same ``options`` (``threshold``,
    ``max_candidates``, ``path_length``, …: see :meth:`CompressedThoughtGenerator.generate`) and no progress
    bar. The candidates are the same at every gap (they come from the prompt's own next-token distribution);
    the paths differ. Keys are the gaps (``int`` when integral)."""
    gaps = [checks.nonnegative(f"gaps[{i}]", g) for i, g in enumerate(checks.as_list(gaps))]
    if not gaps:
        raise ValueError("give at least one gap")
    gen = CompressedThoughtGenerator(lm)
    return {plain_number(g): gen.generate(prompt, gap=g, progress=False, **options) for g in gaps}


def combined_exploration(
    lm: LoadedModel, prompt: str, gap: float | str, regaps: Sequence[float], **options: Any
) -> tuple[CompressedResult, pd.DataFrame]:
    """Seed 000's combined approach: compressed-thought paths at ``gap``, then each path's first token (its
    candidate) re-explored retroactively at every gap of ``regaps``, all in **one** batched cached step over
    the shared prompt prefix (``candidates x regaps`` branches; the prefix is prefilled once for both).

    Returns the compressed result and one row per (candidate, regap): ``position``, the top next token there
    (``top1``, ``p1``), ``tv_vs_path``: the total variation from the distribution that chose the path's
    second token (the candidate at the path's own gap), and ``continues_path``: whether that top token is the
    path's second token. ``options`` go to :meth:`CompressedThoughtGenerator.generate`.
    """
    regaps = [checks.nonnegative(f"regaps[{i}]", g) for i, g in enumerate(checks.as_list(regaps))]
    if not regaps:
        raise ValueError("give at least one regap")
    gen, retro = CompressedThoughtGenerator(lm), RetroactivePositionGenerator(lm)
    _, ids = lm.encode_prompt(prompt)
    prefix = gen.core.prefill(ids)
    res = gen.generate(prompt, gap=gap, progress=False, keep_logits=True, prefix=prefix, **options)
    t = prefix.length
    pairs = [(path, g) for path in res.paths for g in regaps]
    logits = retro.place(prefix, [p.candidate.token_id for p, _ in pairs], [t + g for _, g in pairs])
    probs = torch.softmax(logits.float(), -1)  # (candidates * regaps, vocab)
    rows = []
    for (path, g), row in zip(pairs, probs, strict=True):
        own = torch.softmax(path.logits[1], -1) if len(path.token_ids) > 1 else row
        tv = divergences(row[None], own)[0][0]
        top = int(row.argmax())
        rows.append({
            "candidate": repr(path.candidate.token),
            "path_gap": res.gap,
            "regap": plain_number(g),
            "position": t + g,
            "top1": repr(lm.token_str(top)),
            "p1": float(row[top]),
            "tv_vs_path": float(tv),
            "continues_path": len(path.token_ids) > 1 and top == path.token_ids[1],
        })  # fmt: skip
    return res, pd.DataFrame(rows)


def pruning_runs(
    lm: LoadedModel, prompt: str, thresholds: Sequence[float], *, window: int = 2, **options: Any
) -> dict[float, tuple[ParallelResult, ParallelResult]]:
    """TEMPO runs with retroactive pruning at each pruning threshold: ``(mask-only, recompute)``, the second
    being the exact "as if never there" baseline. ``options`` go to
    :meth:`ParallelTokenGenerator.generate`."""
    from tempo_lab.generators import Pruning

    gen = ParallelTokenGenerator(lm)
    out = {}
    for th in checks.as_list(thresholds):
        masked = gen.generate(prompt, prune=Pruning(th, window), progress=False, **options)
        rebuilt = gen.generate(prompt, prune=Pruning(th, window, recompute=True), progress=False, **options)
        out[float(th)] = (masked, rebuilt)
    return out


def hidden_runs(
    lm: LoadedModel, prompt: str, **options: Any
) -> dict[str, tuple[ParallelResult, ParallelResult]]:
    """For each ``later`` mode (``all``, ``first``, ``none``): a free run, and the ``all`` run's sets replayed
    in that mode with attention captured (same tokens in the same slots; only what later tokens see differs).
    ``options`` go to :meth:`ParallelTokenGenerator.generate`."""
    from tempo_lab.masks import LATER_MODES

    gen = ParallelTokenGenerator(lm)
    free = {later: gen.generate(prompt, later=later, progress=False, **options) for later in LATER_MODES}
    sets = [s.token_ids for s in free["all"].steps if s.fed]
    intraset = options.get("intraset", "isolated")
    return {
        later: (free[later], gen.generate(prompt, later=later, intraset=intraset, forced_sets=sets,
                                          capture=True, progress=False))
        for later in LATER_MODES
    }  # fmt: skip
