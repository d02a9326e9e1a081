"""Fractional positions' figures and views: notebook 02's figure, the render its replay view and live
explorer share (a cached step of three branches on the prompt's held prefix), and the study's figure.

Contents: :func:`position_sweep_plot`, :func:`render`, :func:`view`, :func:`explorer`, :func:`figure`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.generators import PositionSweep, RetroactivePositionGenerator
from tempo_lab.generators.retroactive import TOP_KEPT
from tempo_lab.labels import token_label
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena.fractional.probe import NAME, TITLE
from tempo_lab.plots import CI, n_prompts
from tempo_lab.summaries import tv
from tempo_lab.views import Control, Rendered, View, live_view


def position_sweep_plot(divergence: pd.DataFrame, curves: pd.DataFrame, natural: float, token: str) -> Figure:
    """Left: total variation to the integer position below and above; right: top-token probability curves."""
    fig = plots.figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    x = divergence["position"]
    left.plot(x, divergence["tv_floor"], label="TV to floor(position)", color=plots.BLUE)
    left.plot(x, divergence["tv_ceil"], label="TV to ceil(position)", color=plots.ORANGE)
    left.plot(
        x, divergence["tv_natural"], label=f"TV to natural position {natural:g}", color=plots.GREY, ls="--"
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


def render(sweep: PositionSweep, position: float, top_k: int) -> Rendered:
    """The ``top_k`` tokens with the last token at ``position`` (a swept one), against its integer
    neighbours."""
    i = sweep.index(position)
    ids = sweep.top_ids(top_k, position)
    lo, hi = float(math.floor(position)), float(math.ceil(position))
    probs = sweep.probs.double()
    p, p_lo, p_hi = probs[i], probs[sweep.index(lo)], probs[sweep.index(hi)]
    tv_lo, tv_hi = tv(p, p_lo), tv(p, p_hi)
    tokens = [sweep.token_text[t] for t in ids]
    text = (
        f"position {position:g}: top {tokens[0]!r} {float(p[ids[0]]):.4f}; TV to {lo:g} = {tv_lo:.4f}, "
        f"TV to {hi:g} = {tv_hi:.4f}"
    )
    fig, (ax,) = plots.live_figure(8, 3.6)
    x = np.arange(len(ids))
    for k, (label, row, color) in enumerate([(f"position {lo:g}", p_lo, plots.BLUE),
                                             (f"position {position:g}", p, plots.RED),
                                             (f"position {hi:g}", p_hi, plots.ORANGE)]):  # fmt: skip
        ax.bar(x + (k - 1) * 0.27, [float(row[t]) for t in ids], 0.27, label=label, color=color)
    ax.set_xticks(x, [token_label(t) for t in tokens])
    ax.set_xlabel("next token (top-k at the chosen position)")
    ax.set_ylabel("probability")
    ax.set_title(f"{sweep.token!r} at position {position:g} vs its integer neighbours")
    ax.legend(fontsize=8)
    top = [[t, round(float(p[i_]), 6)] for t, i_ in zip(tokens, ids, strict=True)]
    state = {"position": position, "top": top, "tv_floor": round(tv_lo, 6), "tv_ceil": round(tv_hi, 6)}
    return Rendered(text, fig, state)


def view(sweep: PositionSweep) -> View:
    """Notebook 02's replay: a swept position (slider) and how many top tokens to show."""
    positions = [float(p) for p in sweep.positions]
    first = min(positions, key=lambda q: (abs(q - (sweep.natural + 0.5)), q))
    return View(NAME, lambda position, top_k: render(sweep, position, top_k), {
        "position": Control(first, options=positions, description="position"),
        "top_k": Control(5, 1, TOP_KEPT, 1, description="top-k"),
    }, title=TITLE)  # fmt: skip


def explorer(session: LiveSession) -> View:
    """The live half step: type a prompt, move its last token by a (fractional) shift from where it stands."""
    gen = RetroactivePositionGenerator(session.lm)
    controls = {
        "prompt": Control("The answer is", kind="text", description="prompt"),
        "shift": Control(-0.5, -1.0, 5.0, 0.1, description="last token moved by"),
        "top_k": Control(5, 1, TOP_KEPT, 1, description="top-k"),
    }

    def update(values, progress) -> Rendered:
        prefix = session.use_prompt(values["prompt"], drop_last=True)
        position = round(prefix.length + float(values["shift"]), 6)
        sweep = gen.sweep(values["prompt"], [position], prefix=prefix)
        return render(sweep, position, int(values["top_k"]))

    return live_view(NAME, TITLE, controls, update, note=session.note)


def figure(table: pd.DataFrame) -> Figure:
    """Total variation of the next-token distribution at ``k + 0.5`` against each integer neighbour."""
    long = table.melt(id_vars=["prompt"], value_vars=["tv_low", "tv_high", "tv_neighbours"], var_name="pair",
                      value_name="tv")  # fmt: skip
    long["pair"] = long["pair"].map(
        {"tv_low": "k+0.5 vs k", "tv_high": "k+0.5 vs k+1 (natural)", "tv_neighbours": "k vs k+1"}
    )
    fig = plots.figure(6, 3.4)
    ax = fig.subplots()
    sns.barplot(long, x="pair", y="tv", ax=ax, color=plots.BLUE, **CI)
    ax.set(xlabel="positions compared (last prompt token)", ylabel="total variation",
           title=f"A half-step position over {n_prompts(table)} prompts (95% CI)")  # fmt: skip
    return fig
