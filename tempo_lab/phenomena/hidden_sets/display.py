"""Sets hidden from later tokens: the attention maps of the modes side by side.

Contents: :func:`hidden_maps`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.generators import ParallelResult
from tempo_lab.summaries import set_spans


def hidden_maps(runs: Mapping[str, ParallelResult], tokens: Sequence[str], title: str) -> Figure:
    """One attention map per ``later`` mode (``runs``: later -> captured run on the same slots)."""
    fig = plots.figure(6 * len(runs), 6.2)
    axes = fig.subplots(1, len(runs))
    vmax = max(float(r.attention_map().max()) for r in runs.values()) ** 0.5
    for ax, (later, run) in zip(axes, runs.items(), strict=True):
        shown = run.attention_map().sqrt()
        im = plots.attention_map(ax, shown, tokens, set_spans(run), f"later = {later!r}", vmax=vmax)
    fig.colorbar(im, ax=list(axes), shrink=0.7, label="sqrt(attention)")
    fig.suptitle(title)
    return fig
