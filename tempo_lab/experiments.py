"""Experiment drivers: the runs a notebook compares, done in one call.

Each driver runs a generator several times with one thing varied and returns the results keyed by it.

Contents: :class:`ModePair` and :func:`parallel_pairs` (TEMPO runs in both intra-set modes, with a replay
on identical sets), :func:`compressed_runs` (compressed-thought runs over gaps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tempo_lab import checks
from tempo_lab.generators import (
    CompressedResult,
    CompressedThoughtGenerator,
    ParallelResult,
    ParallelTokenGenerator,
)
from tempo_lab.labels import plain_number
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
