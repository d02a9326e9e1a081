"""The figures of the interventions: patching heatmaps, attribution bars and the search curve (the computing
modules beside this one import no plotting library).

Contents: :func:`heatmap` (a :class:`~tempo_lab.interventions.patching.PatchResult`),
:func:`attribution_figure` (per-slot values), :func:`search_figure` (a
:class:`~tempo_lab.interventions.search.PositionSearch`).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.interventions.patching import PatchResult
from tempo_lab.interventions.search import MAX_GRID_SLOTS, PositionSearch
from tempo_lab.labels import token_label


def heatmap(result: PatchResult, kind: str, slot: int | None = None, title: str | None = None) -> Figure:
    """The fraction of the difference each site carries: layers x slots (token labels) for ``resid`` and
    ``mlp``, layers x heads for ``head``."""
    table = result.table(kind, slot)
    fig, ax = plots.figure_with_axes(
        max(5.0, 0.45 * table.shape[1] + 2.5), max(3.0, 0.22 * table.shape[0] + 1.5)
    )
    data = table.to_numpy(dtype=float)
    lim = max(1e-9, float(np.nanmax(np.abs(data))) if data.size else 1.0)
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
    if kind == "head":
        ax.set_xticks(range(table.shape[1]), [str(h) for h in table.columns], fontsize=plots.SMALL)
        ax.set_xlabel("head")
    else:
        labels = [f"{token_label(result.tokens[s])} {s}" for s in table.columns]
        ax.set_xticks(range(table.shape[1]), labels, rotation=90, fontsize=plots.SMALL)
        ax.set_xlabel("slot (token)")
    ax.set_yticks(range(table.shape[0]), [str(v) for v in table.index], fontsize=plots.SMALL)
    ax.set_ylabel("layer")
    where = f" at slot {slot}" if slot is not None else ""
    ax.set_title(
        title or f"{result.direction}: share of the {result.metric} difference, {kind}{where}", fontsize=10
    )
    fig.colorbar(im, ax=ax, label="fraction of the difference")
    return fig


def attribution_figure(values: torch.Tensor, tokens: list[str], title: str, ylabel: str) -> Figure:
    """A bar per slot (token labels) of ``values`` ``(N,)``, or a layers x slots heat map for
    ``(layers, N)``."""
    if values.dim() == 2:
        fig, ax = plots.figure_with_axes(
            max(5.0, 0.4 * len(tokens) + 2.5), max(3.0, 0.2 * values.shape[0] + 1.5)
        )
        lim = max(1e-12, float(values.abs().max()))
        im = ax.imshow(values.numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, label=ylabel)
    else:
        fig, ax = plots.figure_with_axes(max(5.0, 0.4 * len(tokens) + 2.0), 3.2)
        ax.bar(range(len(tokens)), values.numpy(), color=["C3" if v < 0 else "C0" for v in values.tolist()])
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylabel(ylabel)
    labels = [f"{token_label(t)} {i}" for i, t in enumerate(tokens)]
    ax.set_xticks(range(len(tokens)), labels, rotation=90, fontsize=plots.SMALL)
    ax.set_xlabel("slot (token)")
    ax.set_title(title, fontsize=10)
    return fig


def search_figure(found: PositionSearch, title: str | None = None) -> Figure:
    """The grid's metric against the searched slot's position with every restart's ascent on it (one slot),
    or the grid as a heat map with the ascents as paths (two slots)."""
    if found.grid is None:
        raise ValueError(
            f"a search over {len(found.slots)} slots has no grid to draw (at most {MAX_GRID_SLOTS})"
        )
    fig, ax = plots.figure_with_axes(7.0, 4.0)
    names = [f"slot {s} ({token_label(found.tokens[s])})" for s in found.slots]
    if len(found.slots) == 1:
        ax.plot(found.grid[:, 0].numpy(), found.grid_values.numpy(), color="0.4", lw=1.2, label="grid")
        for r in range(found.trajectory.shape[1]):
            ax.plot(
                found.trajectory[:, r, 0].numpy(),
                found.values[:, r].numpy(),
                ".-",
                ms=3,
                lw=0.8,
                label=f"ascent from {float(found.trajectory[0, r, 0]):.1f}",
            )
        where, value = found.grid_best
        ax.plot([float(where[0])], [value], "kx", ms=9, label="grid best")
        ax.plot([float(found.positions[0])], [found.value], "r*", ms=12, label="ascent best")
        ax.set_xlabel(f"position of {names[0]}")
        ax.set_ylabel(found.metric)
        ax.legend(fontsize=plots.SMALL)
    else:
        xs = sorted(set(found.grid[:, 0].tolist()))
        ys = sorted(set(found.grid[:, 1].tolist()))
        table = np.full((len(ys), len(xs)), np.nan)
        for (a, b), v in zip(found.grid.tolist(), found.grid_values.tolist(), strict=True):
            table[ys.index(b), xs.index(a)] = v
        im = ax.imshow(
            table, origin="lower", aspect="auto", extent=(xs[0], xs[-1], ys[0], ys[-1]), cmap="viridis"
        )
        for r in range(found.trajectory.shape[1]):
            ax.plot(found.trajectory[:, r, 0].numpy(), found.trajectory[:, r, 1].numpy(), "w.-", ms=2, lw=0.8)
        ax.plot([float(found.positions[0])], [float(found.positions[1])], "r*", ms=12)
        ax.set_xlabel(f"position of {names[0]}")
        ax.set_ylabel(f"position of {names[1]}")
        fig.colorbar(im, ax=ax, label=found.metric)
    ax.set_title(title or f"Position search: {found.metric}", fontsize=10)
    return fig
