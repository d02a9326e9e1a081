"""The gap dropout as people see it: tables and figures of a probe, and the one render both views share.

- :func:`mass_table`, :func:`top_token_table`: prompt mass and top token per gap and strategy;
- :func:`prompt_mass_lines`, :func:`layer_mass_heatmaps`: the figures of notebook 01;
- :func:`render`: one probe row with one layer highlighted; :func:`view` replays a probe,
  :func:`explorer` runs the model on every move (a cached step for ``additive_4d``; the other strategies are
  defined by their own uncached call, so they run it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from tempo_lab import plots, positions
from tempo_lab.capture import capture_attention, span_mass
from tempo_lab.labels import token_label
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import widened
from tempo_lab.phenomena.gap_dropout.probe import (
    NAME,
    STRATEGIES,
    TITLE,
    GapProbe,
    GapRow,
    strategy_forward,
)
from tempo_lab.plots import CI, n_prompts
from tempo_lab.views import Control, Rendered, View, live_view

STRATEGY_STYLE: dict[str, dict] = {
    "default_no_cache": {"color": plots.RED, "marker": "o", "linestyle": "-"},
    "default_cache": {"color": plots.BLUE, "marker": "s", "linestyle": "--"},
    "ones_2d": {"color": plots.PURPLE, "marker": "^", "linestyle": ":"},
    "additive_4d": {"color": plots.GREEN, "marker": "x", "linestyle": "-."},
}

# --- tables ---


def mass_table(probe: GapProbe) -> pd.DataFrame:
    """Prompt mass: one row per gap, one column per strategy (in the probe's strategy order)."""
    frame = probe.frame
    return frame.pivot(index="gap", columns="strategy", values="prompt_mass")[probe.strategies]


def top_token_table(probe: GapProbe) -> pd.DataFrame:
    """The top next token and its probability per (gap, strategy), as ``"' was' 0.7886"``."""
    frame = probe.frame
    cells = frame.assign(top=[f"{t!r} {p:.4f}" for t, p in zip(frame["top1"], frame["p1"], strict=True)])
    return cells.pivot(index="gap", columns="strategy", values="top")[probe.strategies]


# --- figures ---


def prompt_mass_lines(probe: GapProbe) -> Figure:
    """Prompt mass against gap, one line per mask strategy."""
    fig, ax = plots.figure_with_axes(6.5, 4.0)
    frame = probe.frame
    gaps = sorted(frame["gap"].unique())
    xs = np.arange(len(gaps))
    for strategy in probe.strategies:
        rows = frame[frame["strategy"] == strategy].set_index("gap").loc[gaps]
        ax.plot(xs, rows["prompt_mass"], label=strategy, **STRATEGY_STYLE.get(strategy, {}))
    ax.set_xticks(xs, [f"{g:g}" for g in gaps])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("gap (positions skipped before the last token)")
    ax.set_ylabel("attention mass on the prompt")
    ax.set_title(f"Prompt mass of {token_label(probe.token)} after a gap")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    return fig


def layer_mass_heatmaps(probe: GapProbe) -> Figure:
    """Per-layer prompt mass, one panel per strategy: rows = layers, columns = gaps."""
    strategies = probe.strategies
    fig = plots.figure(2.4 * len(strategies) + 1.0, 4.2)
    axes = fig.subplots(1, len(strategies), sharey=True, squeeze=False)[0]
    im = None
    for ax, strategy in zip(axes, strategies, strict=True):
        rows = probe.frame[probe.frame["strategy"] == strategy]
        data = np.stack(list(rows["layer_mass"])).T  # (layers, gaps)
        im = ax.imshow(data, aspect="auto", vmin=0, vmax=1, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(rows)), [f"{g:g}" for g in rows["gap"]], fontsize=plots.SMALL)
        ax.set_title(strategy, fontsize=9)
        ax.set_xlabel("gap")
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes), label="prompt mass (mean over heads)")
    fig.suptitle("Per-layer attention on the prompt")
    return fig


# --- the render both views share ---


def render(row: GapRow, layer: int, kept: plots.LiveFigure | None = None) -> Rendered:
    """One strategy and gap: the prompt mass per layer (``layer`` highlighted) and the top next tokens.
    ``kept``: a live explorer's figure, updated in place while the number of layers and tokens stay."""
    n_layers = len(row.layer_mass)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is out of range 0..{n_layers - 1}")
    top1, p1 = row.top_tokens[0], row.top_probs[0]
    text = (
        f"{row.strategy}, gap {row.gap:g}: prompt mass {row.prompt_mass:.4f} (layer {layer}: "
        f"{float(row.layer_mass[layer]):.4f}); top {top1!r} {p1:.4f}"
    )
    titles = (f"{row.strategy}, gap {row.gap:g}: prompt mass per layer",
              f"next token after {row.token!r} at {row.position:g}")  # fmt: skip

    def build() -> Figure:
        fig, (left, right) = plots.live_figure(10, 3.6, 2, width_ratios=[3, 2])
        plots.layer_mass_bars(row.layer_mass, layer, titles[0], left)
        plots.top_token_bars(row.top_tokens, row.top_probs, titles[1], right)
        return fig

    fig, new = (kept or plots.LiveFigure()).get((n_layers, len(row.top_tokens)), build)
    if not new:
        left, right = fig.axes
        plots.update_layer_mass_bars(row.layer_mass, layer, titles[0], left)
        plots.update_top_token_bars(row.top_tokens, row.top_probs, titles[1], right)
    state = {
        "strategy": row.strategy,
        "position": float(row.position),
        "prompt_mass": round(row.prompt_mass, 6),
        "layer_mass": [round(float(m), 6) for m in row.layer_mass],
        "top": [[t, round(float(p), 6)] for t, p in zip(row.top_tokens, row.top_probs, strict=True)],
    }
    return Rendered(text, fig, state)


def view(probe: GapProbe) -> View:
    """Notebook 01's replay: one (gap, strategy) of ``probe``, one layer highlighted."""
    gaps = probe.gaps

    def show(gap, strategy, layer) -> Rendered:
        return render(probe.row(strategy, gap), layer)

    return View(NAME, show, {
        "gap": Control(gaps[1] if len(gaps) > 1 else gaps[0], options=gaps, description="gap"),
        "strategy": Control(probe.strategies[0], options=probe.strategies, description="strategy"),
        "layer": Control(0, 0, probe.n_layers - 1, 1, description="layer"),
    }, title=TITLE)  # fmt: skip


def explorer(session: LiveSession) -> View:
    """The live gap dropout: type a prompt and a token, choose the strategy, the gap and the layer."""
    lm = session.lm
    controls = {
        "prompt": Control("Once upon a time,", kind="text", description="prompt"),
        "token": Control(" there", kind="text", description="token after the gap"),
        "strategy": Control("additive_4d", options=list(STRATEGIES), kind="toggle", description="mask"),
        "gap": Control(5, 0, 100, 1, description="gap"),
        "layer": Control(0, 0, lm.model.config.num_hidden_layers - 1, 1, description="layer"),
    }
    kept = plots.LiveFigure()

    def update(values, progress) -> Rendered:
        session.use_prompt(values["prompt"])
        t, token_id = session.prompt_len, session.token_id(values["token"])
        gap, strategy = int(values["gap"]), values["strategy"]
        if strategy == "additive_4d":  # tempo_lab's own mask: one cached step on the held prefix
            with capture_attention(lm.model) as rec:
                probs = session.place(token_id, [float(t + gap)])[0]
            weights = rec.stacked(width=t + 1)  # (layers, 1, heads, 1, t + 1)
        else:  # the strategy is its own (uncached or fresh-cache) call: run it as it is
            ids = session.prefix.input_ids
            seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], 1)
            run = strategy_forward(lm, seq, positions.with_gap(t, 1, gap), strategy)
            probs, weights = torch.softmax(run.logits[0], -1), run.attention.stacked()
        layer_mass = span_mass(widened(weights), slice(0, t))[:, 0].mean(-1)  # (layers,)
        top_p, top_i = probs.topk(5)
        row = GapRow(strategy, gap, t + gap, lm.token_str(token_id), float(layer_mass.mean()),
                     layer_mass.cpu().numpy(), [lm.token_str(int(i)) for i in top_i],
                     [float(p) for p in top_p])  # fmt: skip
        return render(row, int(values["layer"]), kept)

    return live_view(NAME, TITLE, controls, update, note=session.note)


def figure(table: pd.DataFrame) -> Figure:
    """Attention mass of the token after the gap on the prompt, per gap and mask strategy."""
    fig = plots.figure(7, 3.6)
    ax = fig.subplots()
    sns.pointplot(table, x="gap", y="prompt_mass", hue="strategy", ax=ax, dodge=0.1, native_scale=True, **CI)
    ax.set(xlabel="gap (positions skipped)", ylabel="attention on the prompt (mean over layers, heads)",
           title=f"Gap dropout over {n_prompts(table)} prompts (95% CI)", ylim=(-0.02, 1.02))  # fmt: skip
    plots.legend_outside(ax, title="strategy")
    return fig
