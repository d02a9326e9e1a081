"""What every figure shares: fresh figures, deterministic PNGs, and drawing elements several phenomena use.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never through pyplot's global
state, so rendering one in a loop (a slider) leaks nothing. :func:`save` writes PNGs with a fixed dpi and no
"Software" metadata, so re-running a notebook on the same numbers rewrites byte-identical files. Each
phenomenon's own figures live in its slice (:mod:`tempo_lab.phenomena`).

Contents: :func:`figure`, :func:`figure_with_axes`, :func:`live_figure`, :class:`LiveFigure`, :func:`save`;
what study figures share: :data:`CI` (seaborn's 95% bootstrap intervals with a fixed seed, so the intervals
and the PNGs are the same on every run), :func:`n_prompts`, :func:`ci_histogram`;
drawing elements :func:`paired_bars`, :func:`layer_mass_bars`, :func:`top_token_bars`, :func:`attention_map`,
:func:`outline_sets`, :func:`highlight_set`; the bar elements' data setters, which a kept live figure calls
(:func:`update_paired_bars`, :func:`update_layer_mass_bars`, :func:`update_top_token_bars`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab.labels import token_label
from tempo_lab.stats import bootstrap_ci

DPI = 100
#: bar colours: one highlighted bar among plain ones
HIGHLIGHT, PLAIN = "#ff7f0e", "#1f77b4"


#: seaborn's 95% bootstrap intervals, seeded: the same intervals (and PNGs) on every run
CI = {"errorbar": ("ci", 95), "n_boot": 1000, "seed": 0}


def figure(width: float = 8.0, height: float = 4.0) -> Figure:
    """A fresh figure, not registered with pyplot (nothing to close)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def live_figure(width: float, height: float, columns: int = 1, **grid) -> tuple[Figure, list[Axes]]:
    """A figure for a live view: fixed margins instead of constrained layout, which alone costs ~0.15 s of a
    slider move's redraw on a 2-core CPU. Returns the figure and its ``columns`` axes in one row."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(1, columns, squeeze=False, **grid)[0]
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.88, wspace=0.3)
    return fig, list(axes)


class LiveFigure:
    """A live view's figure kept between renders. :meth:`get` returns the kept figure while its ``signature``
    (whatever fixes the layout: the tokens, the lines, the labels) is unchanged, else a new one from
    ``build()``; the render then updates its artists' data. A kept figure redraws on the same canvas, whose
    renderer keeps the text layouts it measured, so a move costs neither rebuilding the axes nor laying out
    unchanged text again."""

    def __init__(self) -> None:
        self.figure: Figure | None = None
        self.signature: object = None
        self.builds = 0

    def get(self, signature: object, build: Callable[[], Figure]) -> tuple[Figure, bool]:
        """``(figure, new)``: the kept figure (``new`` False) or ``build()``'s (``new`` True)."""
        if self.figure is None or signature != self.signature:
            self.figure, self.signature = build(), signature
            self.builds += 1
            return self.figure, True
        return self.figure, False


def figure_with_axes(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    """A fresh :func:`figure` with one axes."""
    fig = figure(width, height)
    return fig, fig.add_subplot()


def save(fig: Figure, fig_dir: str | Path, name: str) -> Path:
    """Write ``fig`` to ``fig_dir/name.png`` (folder created) with deterministic metadata; return the path."""
    path = Path(fig_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def paired_bars(
    ax: Axes, tokens: Sequence[str], rows: Sequence[Sequence[float]], labels: Sequence[str], title: str
) -> None:
    """Grouped bars: the probability of each token (x axis) under each row's distribution (one colour per
    row, named by ``labels``)."""
    x = np.arange(len(tokens))
    width = 0.8 / max(1, len(rows))
    for k, (row, label) in enumerate(zip(rows, labels, strict=True)):
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, row, width, label=label)
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    update_paired_bars(ax, tokens, rows, labels)


def update_paired_bars(
    ax: Axes, tokens: Sequence[str], rows: Sequence[Sequence[float]], labels: Sequence[str]
) -> None:
    """Set :func:`paired_bars`' data on its artists (as many tokens and rows): heights, tokens, legend;
    the y axis rescaled."""
    for bar, height in zip(ax.patches, [h for row in rows for h in row], strict=True):
        bar.set_height(height)
    ax.set_xticks(np.arange(len(tokens)), [token_label(t) for t in tokens], fontsize=8)
    for text, label in zip(ax.get_legend().get_texts(), labels, strict=True):
        text.set_text(label)
    ax.relim()
    ax.autoscale_view()


def layer_mass_bars(layer_mass: Sequence[float], highlight: int | None, title: str, ax: Axes) -> None:
    """Bars of prompt mass per layer, one layer highlighted."""
    ax.bar(range(len(layer_mass)), layer_mass)
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer")
    ax.set_ylabel("prompt mass")
    update_layer_mass_bars(layer_mass, highlight, title, ax)


def update_layer_mass_bars(layer_mass: Sequence[float], highlight: int | None, title: str, ax: Axes) -> None:
    """Set :func:`layer_mass_bars`' data on its artists (as many layers): heights, highlight, title."""
    for i, (bar, mass) in enumerate(zip(ax.patches, layer_mass, strict=True)):
        bar.set_height(float(mass))
        bar.set_facecolor(HIGHLIGHT if i == highlight else PLAIN)
    ax.set_title(title, fontsize=10)


def top_token_bars(tokens: Sequence[str], probs: Sequence[float], title: str, ax: Axes) -> None:
    """Horizontal bars of the top tokens, most probable on top."""
    ys = np.arange(len(tokens))[::-1]
    ax.barh(ys, probs, color="#2ca02c")
    ax.set_xlabel("probability")
    for y in ys:
        ax.text(0, y, "", va="center", fontsize=8)
    update_top_token_bars(tokens, probs, title, ax)


def update_top_token_bars(tokens: Sequence[str], probs: Sequence[float], title: str, ax: Axes) -> None:
    """Set :func:`top_token_bars`' data on its artists (as many tokens): widths, tokens, values, limits,
    title."""
    ys = np.arange(len(tokens))[::-1]
    for bar, p in zip(ax.patches, probs, strict=True):
        bar.set_width(p)
    for label, y, p in zip(ax.texts, ys, probs, strict=True):
        label.set_position((p, y))
        label.set_text(f" {p:.3f}")
    ax.set_yticks(ys, [token_label(t) for t in tokens])
    ax.set_xlim(0, max(1e-9, max(probs, default=0)) * 1.15)
    ax.set_title(title, fontsize=10)


def outline_sets(ax: Axes, spans: Sequence[tuple[int, int, int]], color: str = "#00e0ff") -> None:
    """Outline each parallel set's block (its members' rows x columns) on an attention map."""
    for _, a, b in spans:
        if b - a > 1:
            ax.add_patch(Rectangle((a - 0.5, a - 0.5), b - a, b - a, fill=False, edgecolor=color, lw=1.4))


def attention_map(
    ax: Axes,
    attention,
    tokens: Sequence[str],
    spans,
    title: str,
    *,
    vmax: float | None = None,
    cmap: str = "viridis",
    vmin: float | None = 0.0,
) -> object:
    """One ``(N, N)`` attention map (row = query slot, column = key slot), token labels, sets outlined."""
    data = np.asarray(attention, dtype=float)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax if vmax is not None else max(1e-9, data.max()))
    labels = [token_label(t) for t in tokens]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("key slot (attended to)")
    ax.set_ylabel("query slot")
    ax.set_title(title, fontsize=10)
    outline_sets(ax, spans)
    return im


def highlight_set(ax: Axes, first: int, end: int, n_slots: int) -> None:
    """Mark one parallel set on an attention map: its members' columns, from its first row to the last."""
    ax.add_patch(Rectangle((first - 0.5, first - 0.5), end - first, n_slots - first, fill=False,
                           edgecolor="#ff3030", lw=1.8))  # fmt: skip


def n_prompts(table: pd.DataFrame) -> int:
    """How many prompts a study table covers."""
    return table["prompt"].nunique()


def ci_histogram(
    values: Sequence[float], title: str, xlabel: str
) -> tuple[tuple[float, float, float], Figure]:
    """A histogram of per-prompt ``values`` with their mean and 95% bootstrap interval (as a line and a band);
    returns ``((mean, lo, hi), figure)``."""
    interval = bootstrap_ci(values)
    fig, ax = figure_with_axes(7, 3.2)
    ax.hist(np.asarray(values, dtype=float), bins=20, color="#4c72b0")
    mean, lo, hi = interval
    ax.axvline(mean, color="#c44e52", lw=2, label=f"mean {mean:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axvspan(lo, hi, color="#c44e52", alpha=0.2)
    ax.set(xlabel=xlabel, ylabel="prompts", title=title)
    ax.legend(fontsize=8)
    return interval, fig
