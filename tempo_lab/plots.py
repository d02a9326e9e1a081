"""What every figure shares: fresh figures, deterministic PNGs, and drawing elements several phenomena use.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never through pyplot's
global state, so rendering one in a loop (a slider) leaks nothing. :func:`save` writes PNGs at
:data:`SAVE_DPI` with no "Software" metadata, so re-running a notebook on the same numbers rewrites
byte-identical files, and refuses a figure without a title or with an unlabelled axis
(:func:`figure_problems`). Each phenomenon's own figures live in its slice (:mod:`tempo_lab.phenomena`).

The style every figure shares (:data:`STYLE`, applied by :func:`use_style`, which ``notebook.setup``
calls): seaborn's colour-blind palette (:data:`PALETTE`, distinguishable in grey and for colour-blind
readers), no text smaller than :data:`SMALL` points, legends without a frame.

Contents: :data:`STYLE`, :func:`use_style`, :func:`figure`, :func:`figure_with_axes`, :func:`live_figure`,
:class:`LiveFigure`, :func:`save`, :func:`figure_problems`, :func:`legend_outside`;
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
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab.labels import token_label
from tempo_lab.stats import bootstrap_ci

DPI = 100  # on screen (inline and live figures)
SAVE_DPI = 150  # the PNGs in figures/: token labels of SMALL points stay legible in print
SMALL = 8  # the smallest text of any figure (token labels, legends), in points
#: seaborn's "colorblind" palette (``sns.color_palette("colorblind").as_hex()``)
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
           "#56b4e9")  # fmt: skip
BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, PINK, GREY = PALETTE[:8]
#: bar colours: one highlighted bar among plain ones
HIGHLIGHT, PLAIN = ORANGE, BLUE
#: the rcParams of every figure (see :func:`use_style`)
STYLE = {
    "axes.prop_cycle": cycler(color=PALETTE),
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": SMALL,
    "legend.title_fontsize": SMALL,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib's rcParams: global display state, as ``%matplotlib inline`` is, so
    only ``notebook.setup`` calls it (a library user's own figures keep their style)."""
    import matplotlib

    matplotlib.rcParams.update(STYLE)


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
    """Write ``fig`` to ``fig_dir/name.png`` (folder created) at :data:`SAVE_DPI` with deterministic metadata;
    return the path. A figure with :func:`figure_problems` is refused before anything is written."""
    problems = figure_problems(fig)
    if problems:
        raise ValueError(f"figure {name!r} is not ready to print: " + "; ".join(problems))
    path = Path(fig_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=SAVE_DPI, metadata={"Software": None})
    return path


def figure_problems(fig: Figure) -> list[str]:
    """What keeps ``fig`` from print: no title (the figure's or each panel's), a panel's axis with neither a
    label nor a labelled axis it shares (nor the figure's ``supxlabel``/``supylabel``), or text smaller than
    :data:`SMALL` points. Colour bars and hidden axes are not panels. ``[]`` when ready."""
    panels = [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]
    found = []
    sup = {"x": fig.get_supxlabel(), "y": fig.get_supylabel()}
    for i, ax in enumerate(panels):
        where = f"panel {i}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        if not (ax.get_title() or fig.get_suptitle()):
            found.append(f"{where} has no title")
        for a, shared in (("x", ax.get_shared_x_axes()), ("y", ax.get_shared_y_axes())):
            labelled = any(getattr(s, f"get_{a}label")() for s in shared.get_siblings(ax))
            if not (labelled or sup[a]):
                found.append(f"{where} has no {a} label")
        small = sorted({round(t.get_fontsize(), 1) for t in _texts(ax)
                        if t.get_text() and t.get_fontsize() < SMALL})  # fmt: skip
        if small:
            found.append(f"{where} has text of {small[0]:g} pt (at least {SMALL} pt)")
    return found


def _texts(ax: Axes) -> list:
    """The visible texts of a panel: tick labels, texts, legend and title."""
    out = [*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts, ax.title]
    if ax.get_legend() is not None:
        out += ax.get_legend().get_texts()
    return [t for t in out if t.get_visible()]


def legend_outside(ax: Axes, **kwargs) -> None:
    """The panel's legend to the right of its data, never on it (constrained layout makes the room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


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
    ax.barh(ys, probs, color=GREEN)
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
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=SMALL)
    ax.set_yticks(range(len(labels)), labels, fontsize=SMALL)
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
    ax.hist(np.asarray(values, dtype=float), bins=20, color=BLUE)
    mean, lo, hi = interval
    ax.axvline(mean, color=RED, lw=2, label=f"mean {mean:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axvspan(lo, hi, color=RED, alpha=0.2)
    ax.set(xlabel=xlabel, ylabel="prompts", title=title)
    ax.legend(fontsize=8)
    return interval, fig
