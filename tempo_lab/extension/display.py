"""Context extension's figures: the bands' angles past the trained context under each method (notebook 10).

The numbers come from :mod:`tempo_lab.extension.angles`; this module only draws them. The char-LMs' scores
(notebook 10, part a) are drawn by :mod:`tempo_lab.tpi.display`.

Contents: :func:`angles_figure`, :data:`COLOURS` (one colour per method, shared by every figure of the
methods).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tempo_lab import plots

COLOURS = {"plain": "#444444", "pi": plots.BLUE, "ntk": plots.GREEN, "yarn": plots.ORANGE,
           "self-extend": plots.PURPLE, "tpi": plots.BROWN, "tpi-decay": plots.PINK}  # fmt: skip


def angles_figure(angles: pd.DataFrame, title: str) -> Figure:
    """Two heatmaps, methods by rotary band (0 the highest frequency): the share of each band's angle range
    never seen in training, and log2 of its step against training's."""
    methods = list(dict.fromkeys(angles.method))
    bands = sorted(set(angles.band))
    unseen = angles.pivot(index="method", columns="band", values="unseen").loc[methods]
    step = np.log2(angles.pivot(index="method", columns="band", values="step").loc[methods])
    fig = plots.figure(10, 1.2 + 0.45 * len(methods) * 2)
    top, bottom = fig.subplots(2, 1)
    for ax, data, cmap, label, lo, hi in (
        (top, unseen, "Reds", "unseen share", 0, 1),
        (
            bottom,
            step,
            "coolwarm",
            "log2 step (f'/f)",
            -max(1, abs(step.values).max()),
            max(1, abs(step.values).max()),
        ),
    ):
        image = ax.imshow(data.values, aspect="auto", cmap=cmap, vmin=lo, vmax=hi)
        ax.set_yticks(range(len(methods)), methods)
        size = plots.SMALL if len(bands) > 16 else 9
        ax.set_xticks(range(len(bands)), [str(b) for b in bands], fontsize=size)
        ax.set_xlabel("rotary band (0 = highest frequency)")
        ax.set_ylabel("method")
        fig.colorbar(image, ax=ax, label=label)
    top.set_title("The share of each band's angles never seen in training")
    bottom.set_title("Each band's step per position against training's (log2)")
    fig.suptitle(title)
    return fig


