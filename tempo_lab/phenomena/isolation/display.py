"""Isolated against visible parallel sets (notebook 04): the same TEMPO sets under two masks.

- :func:`parallel_pairs` (:class:`ModePair`): each threshold's runs in both modes, and the isolated run's
  sets replayed in visible mode (same tokens in the same slots, only the mask differs);
- :func:`mode_sets_table`, :func:`mode_texts_table`, :func:`mode_mass_table`, :func:`mode_maps`,
  :func:`mode_mass_bars`: notebook 04's tables and figures;
- :func:`view`: the replay, drawn by :func:`tempo_lab.phenomena.tempo_sets.render` (the live TEMPO explorer's
  render) with the other mode beside;
- :mod:`.study`: the two modes over a prompt set, and the two seed claims they decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tempo_lab import masks, plots
from tempo_lab.phenomena.isolation.probe import NAME, TITLE, ModePair
from tempo_lab.phenomena.tempo_sets.display import render as render_run
from tempo_lab.plots import CI
from tempo_lab.summaries import set_spans
from tempo_lab.views import Control, View

MODE_COLOR = {"isolated": "#1f77b4", "visible": "#ff7f0e"}


def mode_maps(iso, vis, tokens: Sequence[str], spans, title: str) -> Figure:
    """Isolated map, visible map (same tokens, same slots) and their difference, side by side."""
    iso, vis = np.asarray(iso, dtype=float), np.asarray(vis, dtype=float)
    fig = plots.figure(16, 6.0)
    axes = fig.subplots(1, 3)
    vmax = max(iso.max(), vis.max(), 1e-9) ** 0.5
    for ax, data, name in ((axes[0], iso, "isolated"), (axes[1], vis, "visible")):
        im = plots.attention_map(ax, np.sqrt(data), tokens, spans, f"{name} (sqrt of attention)", vmax=vmax)
    fig.colorbar(im, ax=list(axes[:2]), shrink=0.7, label="sqrt(attention)")
    diff = iso - vis
    lim = max(abs(diff).max(), 1e-9)
    im = plots.attention_map(
        axes[2], diff, tokens, spans, "isolated - visible", vmin=-lim, vmax=lim, cmap="RdBu_r"
    )
    fig.colorbar(im, ax=axes[2], shrink=0.7, label="attention difference")
    fig.suptitle(title)
    return fig


def mode_mass_bars(table: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Attention of later tokens on each parallel set, isolated vs visible
    (:func:`mode_mass_table`)."""
    fig = plots.figure(9, 3.8) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["isolated"], 0.4, label="isolated", color=MODE_COLOR["isolated"])
    ax.bar(x + 0.2, table["visible"], 0.4, label="visible", color=MODE_COLOR["visible"])
    ax.set_xticks(
        x,
        [f"{s}: {t}" for s, t in zip(table["step"], table["tokens"], strict=True)],
        rotation=60,
        fontsize=7,
        ha="right",
    )
    ax.set_xlabel("parallel set (step: members)")
    ax.set_ylabel("mean attention of later tokens")
    ax.set_title("How much later tokens attend to each parallel set")
    ax.legend(fontsize=8)
    return fig


def view(pairs: Mapping[float, ModePair]) -> View:
    """Notebook 04's replay: one run's attention map, isolated or visible (the isolated run's sets replayed),
    one parallel set highlighted, with the other mode's later attention on it beside."""
    thresholds = sorted(pairs)
    first = pairs[thresholds[0]].isolated
    n_layers, n_heads = len(first.attention.layers), first.attention.passes[0][0].shape[1]
    max_steps = max(len(set_spans(p.isolated)) for p in pairs.values())

    def show(threshold, step, layer, head, mode):
        if threshold not in pairs:
            raise ValueError(f"threshold {threshold} was not run; choose one of {thresholds}")
        pair = pairs[threshold]
        run, other = (pair.isolated, pair.replay) if mode == "isolated" else (pair.replay, pair.isolated)
        return render_run(run, pair.slot_tokens, step, layer, head, other=other,
                                 label=f"threshold {threshold:g}, ")  # fmt: skip

    return View(NAME, show, {
        "threshold": Control(0.1 if 0.1 in pairs else thresholds[0], options=thresholds,
                             description="threshold"),
        "step": Control(min(2, max_steps - 1), 0, max(1, max_steps - 1), 1, description="set (step)"),
        "layer": Control(-1, -1, n_layers - 1, 1, description="layer (-1 = mean)"),
        "head": Control(-1, -1, n_heads - 1, 1, description="head (-1 = mean)"),
        "mode": Control("isolated", options=list(masks.INTRASET_MODES), description="mode"),
    }, title=TITLE)  # fmt: skip


def figure(table: pd.DataFrame) -> Figure:
    """Later tokens' attention on parallel sets in each intra-set mode, per prompt kind."""
    fig = plots.figure(9, 3.6)
    ax = fig.subplots()
    sns.barplot(table, x="kind", y="later_mass", hue="mode", ax=ax, **CI)
    ax.set(xlabel="prompt kind", ylabel="later attention on a parallel set",
           title=f"Isolated vs visible sets over {table.dropna(subset=['later_mass'])['prompt'].nunique()} "
                 "prompts with parallel sets (95% CI)")  # fmt: skip
    ax.tick_params(axis="x", rotation=30)
    return fig
