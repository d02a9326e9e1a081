"""Figures for the notebooks: pure functions from results to a matplotlib ``Figure``.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never through pyplot's global
state, so rendering one in a loop (a slider) leaks nothing. :func:`save` writes PNGs with a fixed dpi and no
"Software" metadata, so re-running a notebook on the same numbers rewrites byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab.labels import token_label

DPI = 100
STRATEGY_STYLE: dict[str, dict] = {
    "default_no_cache": {"color": "#d62728", "marker": "o", "linestyle": "-"},
    "default_cache": {"color": "#1f77b4", "marker": "s", "linestyle": "--"},
    "ones_2d": {"color": "#9467bd", "marker": "^", "linestyle": ":"},
    "additive_4d": {"color": "#2ca02c", "marker": "x", "linestyle": "-."},
}
MODE_COLOR = {"isolated": "#1f77b4", "visible": "#ff7f0e"}


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
    ax.set_xticks(x, [token_label(t) for t in tokens], fontsize=8)
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


# --- 01: the gap attention dropout ---


def prompt_mass_lines(frame: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Prompt mass against gap, one line per mask strategy (``frame``: :func:`tempo_lab.probe.gap_probe`)."""
    fig = figure(6.5, 4.0) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    gaps = sorted(frame["gap"].unique())
    xs = np.arange(len(gaps))
    for strategy in dict.fromkeys(frame["strategy"]):
        rows = frame[frame["strategy"] == strategy].set_index("gap").loc[gaps]
        ax.plot(xs, rows["prompt_mass"], label=strategy, **STRATEGY_STYLE.get(strategy, {}))
    ax.set_xticks(xs, [f"{g:g}" for g in gaps])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("gap (positions skipped before the last token)")
    ax.set_ylabel("attention mass on the prompt")
    ax.set_title(f"Prompt mass of {token_label(frame.attrs.get('token', ''))} after a gap")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    return fig


def layer_mass_heatmaps(frame: pd.DataFrame) -> Figure:
    """Per-layer prompt mass, one panel per strategy: rows = layers, columns = gaps."""
    strategies = list(dict.fromkeys(frame["strategy"]))
    fig = figure(2.4 * len(strategies) + 1.0, 4.2)
    axes = fig.subplots(1, len(strategies), sharey=True, squeeze=False)[0]
    im = None
    for ax, strategy in zip(axes, strategies, strict=True):
        rows = frame[frame["strategy"] == strategy]
        data = np.stack(list(rows["layer_mass"])).T  # (layers, gaps)
        im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(rows)), [f"{g:g}" for g in rows["gap"]], fontsize=7)
        ax.set_title(strategy, fontsize=9)
        ax.set_xlabel("gap")
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes), label="prompt mass (mean over heads)")
    fig.suptitle("Per-layer attention on the prompt")
    return fig


def layer_mass_bars(layer_mass: Sequence[float], highlight: int | None, title: str, ax: Axes) -> None:
    """Bars of prompt mass per layer, one layer highlighted."""
    colors = ["#ff7f0e" if i == highlight else "#1f77b4" for i in range(len(layer_mass))]
    ax.bar(range(len(layer_mass)), layer_mass, color=colors)
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer")
    ax.set_ylabel("prompt mass")
    ax.set_title(title, fontsize=10)


def top_token_bars(tokens: Sequence[str], probs: Sequence[float], title: str, ax: Axes) -> None:
    """Horizontal bars of the top tokens, most probable on top."""
    ys = np.arange(len(tokens))[::-1]
    ax.barh(ys, probs, color="#2ca02c")
    ax.set_yticks(ys, [token_label(t) for t in tokens])
    ax.set_xlim(0, max(1e-9, max(probs, default=0)) * 1.15)
    ax.set_xlabel("probability")
    ax.set_title(title, fontsize=10)
    for y, p in zip(ys, probs, strict=True):
        ax.text(p, y, f" {p:.3f}", va="center", fontsize=8)


# --- 02: fractional positions ---


def position_sweep_plot(divergence: pd.DataFrame, curves: pd.DataFrame, natural: float, token: str) -> Figure:
    """Left: total variation to the integer position below and above; right: top-token probability curves."""
    fig = figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    x = divergence["position"]
    left.plot(x, divergence["tv_floor"], label="TV to floor(position)", color="#1f77b4")
    left.plot(x, divergence["tv_ceil"], label="TV to ceil(position)", color="#ff7f0e")
    left.plot(
        x, divergence["tv_natural"], label=f"TV to natural position {natural:g}", color="#7f7f7f", ls="--"
    )
    for p in sorted({float(v) for v in divergence["floor"]} | {float(v) for v in divergence["ceil"]}):
        left.axvline(p, color="#dddddd", lw=0.8, zorder=0)
    left.axvline(natural, color="k", lw=0.8, ls=":")
    left.set_xlabel(f"position of the last token {token_label(token)}")
    left.set_ylabel("total variation distance")
    left.set_title("Distribution shift vs integer neighbours")
    left.legend(fontsize=8)
    for col in curves.columns:
        right.plot(curves.index, curves[col], label=col, marker=".", ms=3)
    right.axvline(natural, color="k", lw=0.8, ls=":")
    right.set_xlabel(f"position of the last token {token_label(token)}")
    right.set_ylabel("next-token probability")
    right.set_title(f"Top-{curves.shape[1]} tokens at position {natural:g}, across positions")
    right.legend(fontsize=8, title="token", title_fontsize=8)
    return fig


# --- 03: retroactive exploration ---


def retro_heatmap(table: pd.DataFrame, max_labels: int = 21) -> Figure:
    """Heatmap of next-token probability (rows = tokens, columns = gaps) from
    :func:`tempo_lab.tables.retro_heat_table`, the top token at each gap marked with a dot."""
    fig = figure(11, 0.9 + 0.32 * len(table) + 1.2)
    ax = fig.add_subplot()
    data = table.to_numpy()
    im = ax.imshow(data, aspect="auto", cmap="magma", vmin=0, vmax=max(1e-9, float(data.max())))
    best = data.argmax(axis=0)
    ax.scatter(range(data.shape[1]), best, s=6, color="#00e0ff")
    step = max(1, -(-data.shape[1] // max_labels))
    ticks = list(range(0, data.shape[1], step))
    ax.set_xticks(ticks, [f"{table.columns[i]:g}" for i in ticks], fontsize=8)
    ax.set_yticks(range(len(table)), list(table.index), fontsize=8)
    ax.set_xlabel("gap (positions skipped before the token)")
    ax.set_ylabel("next token")
    ax.set_title(
        f"Next-token probability after {table.attrs.get('prompt', '')!r} + {table.attrs.get('token', '')!r} "
        "placed at a gap (dots: top prediction)"
    )
    fig.colorbar(im, ax=ax, label="probability")
    return fig


def token_curve(table: pd.DataFrame, token: str, max_gap: float, ax: Axes) -> None:
    """One token's probability over the gaps ``<= max_gap`` of a heat table, with the top-1 probability."""
    cols = [g for g in table.columns if g <= max_gap]
    ax.plot(cols, table.loc[token, cols], marker=".", label=f"p({token})", color="#d62728")
    ax.plot(
        cols,
        table[cols].max(axis=0),
        ls="--",
        color="#7f7f7f",
        label="top prediction (of the tracked tokens)",
    )
    ax.set_xlabel("gap")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)


# --- 04: isolated vs visible parallel tokens ---


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


def mode_maps(iso, vis, tokens: Sequence[str], spans, title: str) -> Figure:
    """Isolated map, visible map (same tokens, same slots) and their difference, side by side."""
    iso, vis = np.asarray(iso, dtype=float), np.asarray(vis, dtype=float)
    fig = figure(16, 6.0)
    axes = fig.subplots(1, 3)
    vmax = max(iso.max(), vis.max(), 1e-9) ** 0.5
    for ax, data, name in ((axes[0], iso, "isolated"), (axes[1], vis, "visible")):
        im = attention_map(ax, np.sqrt(data), tokens, spans, f"{name} (sqrt of attention)", vmax=vmax)
    fig.colorbar(im, ax=list(axes[:2]), shrink=0.7, label="sqrt(attention)")
    diff = iso - vis
    lim = max(abs(diff).max(), 1e-9)
    im = attention_map(axes[2], diff, tokens, spans, "isolated - visible", vmin=-lim, vmax=lim, cmap="RdBu_r")
    fig.colorbar(im, ax=axes[2], shrink=0.7, label="attention difference")
    fig.suptitle(title)
    return fig


def mode_mass_bars(table: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Attention of later tokens on each parallel set, isolated vs visible
    (:func:`tempo_lab.tables.mode_mass_table`)."""
    fig = figure(9, 3.8) if ax is None else ax.figure
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


# --- 05: compressed thoughts ---


def thought_paths(paths, title: str, ax: Axes | None = None) -> Figure:
    """Each path as a row of token boxes (candidate first), shaded by the probability of each token."""
    import matplotlib as mpl

    fig = figure(12, 0.6 + 0.45 * max(1, len(paths)) + 0.6) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    cmap = mpl.colormaps["Greens"]
    width = max((len(p.tokens) for p in paths), default=1)
    for row, path in enumerate(paths):
        y = len(paths) - 1 - row
        for j, (tok, prob) in enumerate(zip(path.tokens, path.step_probs, strict=True)):
            ax.add_patch(
                Rectangle(
                    (j, y + 0.08),
                    0.96,
                    0.84,
                    color=cmap(0.15 + 0.75 * prob),
                    ec="#1f77b4" if j == 0 else "white",
                    lw=1.5 if j == 0 else 0.5,
                )
            )
            shown = repr(tok)[1:-1].replace(" ", "\u00b7")[:9]  # a leading space shown as a middle dot
            ax.text(j + 0.48, y + 0.5, shown, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, width)
    ax.set_ylim(0, max(1, len(paths)))
    ax.set_yticks(
        [len(paths) - 1 - r + 0.5 for r in range(len(paths))],
        [f"{p.candidate.token!r} {p.candidate.prob:.3f}" for p in paths],
        fontsize=8,
    )
    ax.set_xticks([j + 0.48 for j in range(width)], [str(j) for j in range(width)], fontsize=7)
    ax.set_xlabel(
        "path token (0 = the candidate; \u00b7 = space); shade = the model's probability of that token"
    )
    ax.set_ylabel("candidate, p after prompt")
    ax.set_title(title, fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


def thought_paths_by_gap(runs, prompt: str) -> Figure:
    """One :func:`thought_paths` panel per gap, stacked."""
    gaps = list(runs)
    n_paths = max(len(r.paths) for r in runs.values())
    fig = figure(12, (0.45 * n_paths + 0.9) * len(gaps) + 0.5)
    axes = fig.subplots(len(gaps), 1, squeeze=False)[:, 0]
    for ax, gap in zip(axes, gaps, strict=True):
        res = runs[gap]
        thought_paths(res.paths, f"gap {gap:g}: candidates at position {res.prompt_len + res.gap:g}", ax)
    fig.suptitle(f"Compressed-thought paths after {prompt!r}")
    return fig


# --- 07: pruning and hidden sets ---


def pruning_shares(result, threshold: float, title: str) -> Figure:
    """Each parallel set's members (x) and their share of the next steps' attention (bars; pruned members
    hatched), with the pruning threshold as a line."""
    sets = [(k, s) for k, s in enumerate(result.steps) if s.attention_scores]
    fig = figure(11, 3.8)
    ax = fig.add_subplot()
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


def hidden_maps(runs, tokens: Sequence[str], title: str) -> Figure:
    """One attention map per ``later`` mode (``runs``: later -> captured run on the same slots)."""
    fig = figure(6 * len(runs), 6.2)
    axes = fig.subplots(1, len(runs))
    vmax = max(float(r.attention_map().max()) for r in runs.values()) ** 0.5
    for ax, (later, run) in zip(axes, runs.items(), strict=True):
        spans = [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(run.steps) if s.fed]
        im = attention_map(ax, run.attention_map().sqrt(), tokens, spans, f"later = {later!r}", vmax=vmax)
    fig.colorbar(im, ax=list(axes), shrink=0.7, label="sqrt(attention)")
    fig.suptitle(title)
    return fig
