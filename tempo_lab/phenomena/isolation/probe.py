"""Isolated against visible sets on one prompt: the pair of runs over the same sets, and their tables.

Contents: :class:`ModePair`, :func:`parallel_pairs`, :func:`mode_sets_table`, :func:`mode_texts_table`,
:func:`mode_mass_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from tempo_lab import masks
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks
from tempo_lab.summaries import first_difference, later_mass

NAME, TITLE = "isolation", "Isolated vs visible"


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
        checks.choice("mode", mode, masks.INTRASET_MODES)
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


def mode_sets_table(pair: ModePair) -> pd.DataFrame:
    """The sets chosen by the free runs of both modes, step by step, and whether they are the same."""
    rows = []
    n = max(len(pair.isolated.steps), len(pair.visible.steps))
    for k in range(n):
        a = pair.isolated.steps[k] if k < len(pair.isolated.steps) else None
        b = pair.visible.steps[k] if k < len(pair.visible.steps) else None
        rows.append(
            {
                "step": k,
                "position": (a or b).position,
                "isolated": "/".join(repr(t) for t in a.tokens) if a else "",
                "visible": "/".join(repr(t) for t in b.tokens) if b else "",
                "same set": bool(a and b and sorted(a.token_ids) == sorted(b.token_ids)),
                "same order": bool(a and b and a.token_ids == b.token_ids),
            }
        )
    return pd.DataFrame(rows)


def mode_texts_table(pairs: Mapping[float, ModePair]) -> pd.DataFrame:
    """Per threshold: the text of the free isolated and visible runs, whether they are identical, and the
    first step whose sets differ (``<NA>`` when none does)."""
    rows = []
    for th, pair in pairs.items():
        differ = first_difference(pair.isolated, pair.visible, ordered=False)
        rows.append(
            {
                "threshold": th,
                "isolated": pair.isolated.text,
                "visible": pair.visible.text,
                "identical": pair.isolated.text == pair.visible.text,
                "first differing step": None if differ < 0 else differ,
            }
        )
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def mode_mass_table(pair: ModePair, layer: int | None = None, head: int | None = None) -> pd.DataFrame:
    """:func:`~tempo_lab.summaries.later_mass` of a :class:`ModePair`, in both modes on the shared layout,
    with the relative change isolated vs visible."""
    iso = later_mass(pair.isolated, pair.isolated.attention_map(layer, head))
    vis = later_mass(pair.replay, pair.replay.attention_map(layer, head))
    table = iso.rename(columns={"mass": "isolated"})
    table["visible"] = vis["mass"].to_numpy()
    table["relative change"] = (table["isolated"] - table["visible"]) / table["visible"]
    return table
