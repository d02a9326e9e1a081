"""Retroactive pruning's figure and notebook 07's replay.

Contents: :func:`pruning_shares`, :func:`render`, :func:`view`.
"""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.generators import ParallelResult
from tempo_lab.labels import token_label
from tempo_lab.phenomena.pruning.probe import NAME, RUNS, TITLE, PruningPair
from tempo_lab.views import Control, Rendered, View


def pruning_shares(result: ParallelResult, threshold: float, title: str, ax: Axes | None = None) -> Figure:
    """Each parallel set's members (x) and their share of the next steps' attention (bars; pruned members
    hatched), with the pruning threshold as a line."""
    sets = [(k, s) for k, s in enumerate(result.steps) if s.attention_scores]
    fig = plots.figure(11, 3.8) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    x, ticks, labels = 0.0, [], []
    for k, s in sets:
        for token, share, cut in zip(s.tokens, s.attention_scores, s.pruned, strict=True):
            ax.bar(x, share, color=plots.RED if cut else plots.BLUE, hatch="//" if cut else None)
            ticks.append(x)
            labels.append(f"{k}: {token_label(token)}")
            x += 1
        x += 0.5  # a gap between sets
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=plots.SMALL)
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
