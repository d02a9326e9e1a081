"""Retroactive pruning (notebook 07): TEMPO members that later tokens ignore are pruned by attention.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` with ``prune=Pruning(...)``. Here:
:func:`pruning_runs` (:class:`PruningPair`: mask-only beside the exact recompute, per pruning threshold),
:func:`pruning_table`, :func:`pruning_drift`, :func:`pruning_shares`, and :func:`render` / :func:`view`,
notebook 07's replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tempo_lab import checks, plots
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator, Pruning
from tempo_lab.labels import token_label
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.views import Control, Rendered, View

NAME, TITLE = "pruning", "Pruning"
RUNS = ("mask-only", "recompute")


class PruningPair(NamedTuple):
    """One pruning threshold's runs: ``masked`` (pruned members' mask columns closed) and ``recompute`` (the
    cache rebuilt without them: the exact "as if never there" baseline)."""

    masked: ParallelResult
    recompute: ParallelResult

    def run(self, name: str) -> ParallelResult:
        """The run called ``name``: ``"mask-only"`` or ``"recompute"``."""
        return self.masked if checks.choice("run", name, RUNS) == "mask-only" else self.recompute


def pruning_runs(
    lm: LoadedModel, prompt: str, thresholds: Sequence[float], *, window: int = 2, **options: Any
) -> dict[float, PruningPair]:
    """TEMPO runs with retroactive pruning at each pruning threshold (see :class:`PruningPair`). ``options``
    go to :meth:`ParallelTokenGenerator.generate`."""
    gen = ParallelTokenGenerator(lm)
    out = {}
    for th in checks.as_list(thresholds):
        masked = gen.generate(prompt, prune=Pruning(th, window), progress=False, **options)
        rebuilt = gen.generate(prompt, prune=Pruning(th, window, recompute=True), progress=False, **options)
        out[float(th)] = PruningPair(masked, rebuilt)
    return out


def pruning_table(result: ParallelResult) -> pd.DataFrame:
    """Per parallel set of a pruned run: its members, each member's share of the next steps' attention, and
    which were pruned (``<NA>``-free: sets never decided show empty shares)."""
    rows = []
    for k, s in enumerate(result.steps):
        if s.size < 2:
            continue
        shares = s.attention_scores or []
        rows.append({
            "step": k,
            "position": s.position,
            "members": "/".join(repr(t) for t in s.tokens),
            "attention shares": " / ".join(f"{x:.4f}" for x in shares),
            "pruned": "/".join(repr(t) for t, cut in zip(s.tokens, s.pruned or [], strict=False) if cut),
            "decided at step": s.pruned_at,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["decided at step"] = table["decided at step"].astype("Int64")
    return table


def pruning_drift(runs: Mapping[float, PruningPair]) -> pd.DataFrame:
    """Per pruning threshold: members pruned, and how the mask-only run's continuation drifts from the exact
    recompute (same sets, the first step where they differ, and both texts without the pruned members)."""
    rows = []
    for th, (masked, rebuilt) in runs.items():
        a, b = [s.token_ids for s in masked.steps], [s.token_ids for s in rebuilt.steps]
        same = [x == y for x, y in zip(a, b, strict=False)]
        rows.append({
            "prune threshold": th,
            "members pruned": sum(sum(s.pruned) for s in masked.steps if s.pruned),
            "same sets": sum(same) / max(len(a), len(b)),
            "first differing step": next((k for k, s in enumerate(same) if not s), None),
            "mask-only": masked.pruned_text,
            "recompute": rebuilt.pruned_text,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def pruning_shares(result: ParallelResult, threshold: float, title: str, ax: Axes | None = None) -> Figure:
    """Each parallel set's members (x) and their share of the next steps' attention (bars; pruned members
    hatched), with the pruning threshold as a line."""
    sets = [(k, s) for k, s in enumerate(result.steps) if s.attention_scores]
    fig = plots.figure(11, 3.8) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    x, ticks, labels = 0.0, [], []
    for k, s in sets:
        for token, share, cut in zip(s.tokens, s.attention_scores, s.pruned, strict=True):
            ax.bar(x, share, color="#d62728" if cut else "#1f77b4", hatch="//" if cut else None)
            ticks.append(x)
            labels.append(f"{k}: {token_label(token)}")
            x += 1
        x += 0.5  # a gap between sets
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=7)
    ax.axhline(threshold, color="k", ls=":", lw=1, label=f"pruning threshold {threshold:g}")
    ax.set_xlabel("parallel set (step: member)")
    ax.set_ylabel("share of the next steps' attention")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def render(pair: PruningPair, threshold: float, run: str) -> Rendered:
    """One run of one pruning threshold: the members pruned, the text without them, each set's shares."""
    result = pair.run(run)
    pruned = sum(sum(s.pruned) for s in result.steps if s.pruned)
    text = f"pruning threshold {threshold:g}, {run}: {pruned} member(s) pruned; {result.pruned_text!r}"
    fig, (ax,) = plots.live_figure(11, 3.8)
    fig.subplots_adjust(bottom=0.35)
    pruning_shares(result, threshold, f"{run}, pruning threshold {threshold:g}: {result.text!r}"[:120], ax)
    return Rendered(text, fig, {"pruned": pruned, "pruned_text": result.pruned_text})


def view(runs: Mapping[float, PruningPair]) -> View:
    """Notebook 07's replay: a pruning threshold, mask-only or recomputed."""
    thresholds = sorted(runs)

    def show(threshold, run) -> Rendered:
        if threshold not in runs:
            raise ValueError(f"pruning threshold {threshold} was not run; choose one of {thresholds}")
        return render(runs[threshold], threshold, run)

    return View(NAME, show, {
        "threshold": Control(thresholds[len(thresholds) // 2], options=thresholds, description="prune below"),
        "run": Control("mask-only", options=list(RUNS), description="run"),
    }, title=TITLE)  # fmt: skip


PHENOMENON = Phenomenon(NAME, "07", TITLE)
