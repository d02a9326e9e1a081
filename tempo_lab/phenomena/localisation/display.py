"""Where position acts, shown: notebook 09's figures, and the one render its replay sliders use.

- :func:`recovery_figure`, :func:`heads_figure`, :func:`bands_figure`, :func:`gradient_figure`,
  :func:`collapse_figure`: one figure per localisation, titled, axes labelled;
- :func:`render` / :func:`view`: sliders over computed localisations (which pair, a layer, a band): the
  layer's recovered share and its heads, the band's effect alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.labels import token_label
from tempo_lab.phenomena.localisation.probe import NAME, TITLE, BandCollapse, Localisation
from tempo_lab.phenomena.localisation.summary import curve, shares
from tempo_lab.plots import n_prompts
from tempo_lab.views import Control, Rendered, View


def recovery_figure(locs: Mapping[str, Localisation], title: str) -> Figure:
    """The share of each pair's effect restored by the clean residual stream after each layer."""
    fig, ax = plots.figure_with_axes(8.0, 3.6)
    for label, loc in locs.items():
        ax.plot(
            loc.layers.layer, loc.layers.recovered, marker=".", ms=4, label=f"{label} ({loc.effect:+.3f})"
        )
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axhline(1, color="0.6", lw=0.8, ls=":")
    ax.set(
        xlabel="layer (clean residual stream written in after it, at the read-out slot)",
        ylabel="share of the effect restored",
        title=title,
    )
    ax.legend(fontsize=plots.SMALL)
    return fig


def heads_figure(loc: Localisation, title: str) -> Figure:
    """Layers x heads: the share of the effect one head's clean output restores at the read-out slot."""
    table = loc.heads
    fig, ax = plots.figure_with_axes(
        max(5.0, 0.5 * table.shape[1] + 2.5), max(3.5, 0.16 * table.shape[0] + 1.5)
    )
    data = table.to_numpy(dtype=float)
    lim = max(1e-9, float(np.nanmax(np.abs(data))))
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
    ax.set_xticks(range(table.shape[1]), [str(h) for h in table.columns], fontsize=plots.SMALL)
    ax.set_yticks(range(table.shape[0]), [str(v) for v in table.index], fontsize=plots.SMALL)
    ax.set(xlabel="head", ylabel="layer", title=title)
    fig.colorbar(im, ax=ax, label="share of the effect restored")
    return fig


def bands_figure(locs: Mapping[str, Localisation], title: str) -> Figure:
    """Each band's share of the summed (absolute) one-band effects (the move seen by that band alone), per
    pair."""
    fig, ax = plots.figure_with_axes(8.0, 3.4)
    first = next(loc for loc in locs.values() if loc.bands is not None)
    for label, loc in locs.items():
        if loc.bands is not None:
            ax.plot(loc.bands.band, loc.bands.share, marker="o", ms=3, label=label)
    ticks = list(range(0, len(first.bands), max(1, len(first.bands) // 8)))
    ax.set_xticks(ticks, [f"{b}\n{first.bands.wavelength.iloc[b]:.0f}" for b in ticks], fontsize=plots.SMALL)
    ax.set(
        xlabel="rotary band (0 = highest frequency) / wavelength in tokens",
        ylabel="share of the one-band effects",
        title=title,
    )
    ax.legend(fontsize=plots.SMALL)
    return fig


def gradient_figure(locs: Mapping[str, Localisation], title: str) -> Figure:
    """d metric / d position of the moved slots, seen by one layer at a time."""
    fig, ax = plots.figure_with_axes(8.0, 3.2)
    width = 0.8 / max(1, len(locs))
    for k, (label, loc) in enumerate(locs.items()):
        if loc.gradient is not None:
            ax.bar(loc.gradient.layer + k * width, loc.gradient.gradient, width=width, label=label)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="layer", ylabel=f"d {next(iter(locs.values())).metric} / d position", title=title)
    ax.legend(fontsize=plots.SMALL)
    return fig


def collapse_figure(collapse: BandCollapse, title: str) -> Figure:
    """Per band group without positions: its share of the previous-token heads' score drop and of the
    next-token TV."""
    fig, ax = plots.figure_with_axes(8.0, 3.4)
    x = np.arange(len(collapse.frame))
    ax.bar(x - 0.2, collapse.frame.drop_share, width=0.4, color="C3", label="previous-token score drop")
    ax.bar(x + 0.2, collapse.frame.tv_share, width=0.4, color="C0", label="next-token TV")
    ax.set_xticks(
        x,
        [f"{b}\n{w:.0f}" for b, w in zip(collapse.frame.bands, collapse.frame.wavelength, strict=True)],
        fontsize=plots.SMALL,
    )
    ax.set(
        xlabel="band(s) without positions / shortest wavelength in tokens",
        ylabel="share over the bands",
        title=title,
    )
    ax.legend(fontsize=plots.SMALL)
    return fig


def render(locs: Mapping[str, Localisation], which: str, layer: int, band: int) -> Rendered:
    """Pair ``which``: the recovery curve with ``layer`` marked, that layer's heads, and the effect of the
    move seen by ``band`` alone."""
    if which not in locs:
        raise ValueError(f"no localisation named {which!r}; choose one of {list(locs)}")
    loc = locs[which]
    layer = int(layer)
    recovered = float(loc.layers.recovered.iloc[layer])
    fig, (left, middle, right) = plots.live_figure(13, 3.6, 3)
    left.plot(loc.layers.layer, loc.layers.recovered, marker=".", ms=3)
    left.axvline(layer, color="k", lw=0.8, ls=":")
    left.set(
        xlabel="layer", ylabel="share of the effect restored", title=f"{which}: residual stream per layer"
    )
    state = {"pair": which, "layer": layer, "recovered": round(recovered, 6), "effect": round(loc.effect, 6)}
    text = f"{which}: {loc.metric} moves by {loc.effect:+.4f}; the clean residual stream after layer {layer} "
    text += f"restores {recovered:.1%}"
    if loc.heads is not None:
        row = loc.heads.loc[layer]
        middle.bar(range(len(row)), row.to_numpy(dtype=float))
        best = int(np.nanargmax(row.to_numpy(dtype=float)))
        text += f", its head {best} alone {float(row.iloc[best]):.1%}"
        state["best_head"] = best
    middle.set(
        xlabel="head", ylabel="share of the effect restored", title=f"layer {layer}'s heads, one at a time"
    )
    if loc.bands is not None:
        band = int(min(band, len(loc.bands) - 1))
        right.plot(loc.bands.band, loc.bands.effect, marker=".", ms=3)
        right.axvline(band, color="k", lw=0.8, ls=":")
        moved_by = float(loc.bands.effect.iloc[band])
        text += (
            f"; band {band} (wavelength {loc.bands.wavelength.iloc[band]:.1f} tokens) alone moves it by "
            f"{moved_by:+.4f}"
        )
        state.update(band=band, band_effect=round(moved_by, 6))
    right.set(
        xlabel="rotary band (0 = highest frequency)",
        ylabel="effect, that band alone moved",
        title="one band at a time" if loc.bands is not None else "(a mask pair: no bands)",
    )
    moved = ", ".join(f"{token_label(loc.tokens[s])} {s}" for s in loc.moved) or "none"
    state["moved"] = moved
    return Rendered(text, fig, state)


def view(locs: Mapping[str, Localisation]) -> View:
    """Notebook 09's sliders over its computed localisations: the pair, a layer, a band."""
    first = next(iter(locs.values()))
    n_layers = len(first.layers)
    n_bands = max((len(loc.bands) for loc in locs.values() if loc.bands is not None), default=1)
    return View(
        NAME,
        lambda which, layer, band: render(locs, which, layer, band),
        {
            "which": Control(next(iter(locs)), options=list(locs), description="pair"),
            "layer": Control(n_layers // 2, 0, n_layers - 1, 1, description="layer"),
            "band": Control(0, 0, n_bands - 1, 1, description="band"),
        },
        title=TITLE,
    )


def figure(table: pd.DataFrame) -> Figure:
    """The at-scale localisation: recovery per layer for each gap and for isolation, the band-group TV shares
    per gap, and the previous-token score drop against the next-token TV per band group (95% CIs)."""
    fig = plots.figure(13, 3.8)
    left, middle, right = fig.subplots(1, 3)
    for g in sorted(table[table.measure == "recovered"].gap.unique()):
        c = curve(table, "recovered", g)
        left.plot(c["index"], c["mean"], marker=".", ms=3, label=f"gap {g:g}")
        left.fill_between(c["index"], c["lo"], c["hi"], alpha=0.2)
    c = curve(table, "isolation_recovered")
    left.plot(c["index"], c["mean"], "k--", lw=1, label="isolated vs visible")
    left.set(
        xlabel="layer (residual stream patched after it)",
        ylabel="share of the TV restored",
        title="Where the effect is written in",
    )
    left.legend(fontsize=plots.SMALL)
    for g in sorted(table[table.measure == "band_tv"].gap.unique()):
        s = shares(table, "band_tv", g)
        middle.plot(s.columns, s.mean(), marker="o", ms=3, label=f"gap {g:g}")
    middle.set(
        xlabel="band group (0 = highest frequencies)",
        ylabel="share of the band TVs",
        title="Which bands carry the move",
    )
    middle.legend(fontsize=plots.SMALL)
    for name, colour, label in (
        ("prev_drop", "C3", "previous-token score drop"),
        ("prev_tv", "C0", "next-token TV"),
    ):
        s = shares(table, name)
        right.plot(s.columns, s.mean(), marker="o", ms=3, color=colour, label=label)
    right.set(
        xlabel="band group without positions (0 = highest)",
        ylabel="share over the groups",
        title="Previous-token heads vs the prediction",
    )
    right.legend(fontsize=plots.SMALL)
    fig.suptitle(f"Where position acts, over {n_prompts(table)} prompts (95% CI)")
    return fig
