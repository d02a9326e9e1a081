"""Sets hidden from later tokens: one run per ``later`` mode and its table.

Contents: :func:`hidden_runs` (:class:`HiddenRun`), :func:`hidden_table`, :data:`NAME`, :data:`TITLE`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.masks import LATER_MODES
from tempo_lab.summaries import parallel_later_mass

NAME, TITLE = "hidden_sets", "Hidden sets"


class HiddenRun(NamedTuple):
    """One ``later`` mode: ``free``, its own run; ``replay``, the ``"all"`` run's sets replayed in this mode
    with attention captured (the same tokens in the same slots; only what later tokens see differs)."""

    free: ParallelResult
    replay: ParallelResult


def hidden_runs(lm: LoadedModel, prompt: str, **options: Any) -> dict[str, HiddenRun]:
    """A :class:`HiddenRun` for each ``later`` mode (``all``, ``first``, ``none``); ``options`` go to
    :meth:`ParallelTokenGenerator.generate`."""
    gen = ParallelTokenGenerator(lm)
    free = {later: gen.generate(prompt, later=later, progress=False, **options) for later in LATER_MODES}
    sets = [s.token_ids for s in free["all"].steps if s.fed]
    intraset = options.get("intraset", "isolated")
    return {
        later: HiddenRun(free[later], gen.generate(prompt, later=later, intraset=intraset, forced_sets=sets,
                                                   capture=True, progress=False))
        for later in LATER_MODES
    }  # fmt: skip


def hidden_table(runs: Mapping[str, HiddenRun]) -> pd.DataFrame:
    """Per ``later`` mode: the free run's text and parallel sets, and, on the replayed sets, the mean
    attention later tokens pay to each parallel set (sets of two or more members)."""
    rows = []
    for later, (free, replay) in runs.items():
        mass = parallel_later_mass(replay, replay.attention_map())
        rows.append({
            "later": later,
            "text": free.text,
            "parallel sets": sum(s.size >= 2 for s in free.steps),
            "later attention on parallel sets": None if math.isnan(mass) else mass,
        })  # fmt: skip
    return pd.DataFrame(rows)
