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
from matplotlib.ticker import PercentFormatter

from tempo_lab import masks, plots
from tempo_lab.phenomena.isolation.probe import NAME, TITLE, ModePair
from tempo_lab.phenomena.isolation.study import SAME_ATTENTION, relative_later
from tempo_lab.phenomena.tempo_sets.display import render as render_run
from tempo_lab.plots import CI
from tempo_lab.stats import t_interval
from tempo_lab.summaries import set_spans
from tempo_lab.views import Control, View

MODE_COLOR = {"isolated": plots.BLUE, "visible": plots.ORANGE}


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
        fontsize=plots.SMALL,
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
    """Left: later tokens' attention on parallel sets in each intra-set mode, per prompt kind (95% bootstrap
    CI). Right: what claim 04.later's verdict rests on, the paired relative change per prompt (isolated
    against visible), its mean with the 95% and 90% t-intervals, and the equivalence margin."""
    fig = plots.figure(12, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=(2.2, 1))
    sns.barplot(table, x="kind", y="later_mass", hue="mode", ax=left, palette=MODE_COLOR, **CI)
    left.set(xlabel="prompt kind", ylabel="later attention on a parallel set",
             title=f"Both modes over {table.dropna(subset=['later_mass'])['prompt'].nunique()} prompts "
                   "with parallel sets (95% CI)")  # fmt: skip
    left.tick_params(axis="x", rotation=30)
    plots.legend_outside(left, title="mode")
    change = relative_later(table).to_numpy()
    right.axvspan(-SAME_ATTENTION, SAME_ATTENTION, color=plots.GREY, alpha=0.2,
                  label=f"equivalence margin ±{SAME_ATTENTION:.0%}")  # fmt: skip
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(change))
    right.scatter(change, jitter, s=8, color=plots.GREY, alpha=0.6, label=f"one prompt ({len(change)})")
    if len(change) >= 2:
        mean, lo, hi = t_interval(change)
        _, lo90, hi90 = t_interval(change, level=0.90)
        right.errorbar([mean], [0], xerr=[[mean - lo], [hi - mean]], fmt="o", color=plots.BLUE, capsize=6,
                       lw=1.5, zorder=3, label=f"mean {mean:+.1%}, 95% t-interval [{lo:+.1%}, {hi:+.1%}]")
        right.plot([lo90, hi90], [0, 0], color=plots.BLUE, lw=5, alpha=0.6, zorder=3,
                   label=f"90% t-interval (TOST) [{lo90:+.1%}, {hi90:+.1%}]")  # fmt: skip
    right.axvline(0, color="#000000", lw=0.8)
    right.set(xlabel="(isolated - visible) / visible, per prompt", ylabel="prompts (jittered)", yticks=[],
              ylim=(-0.5, 0.5), title="The paired change behind the verdict")  # fmt: skip
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=plots.SMALL)
    return fig
