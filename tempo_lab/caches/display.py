"""Notebook 11's figures and live view: the first token's attention mass per layer, a reused chunk's error
per layer, the TV left by partial recompute, rolling caches' loss along a long text, and a live control of a
rolling cache and a reused chunk.

The numbers come from :mod:`tempo_lab.caches.tables` (the study) and from :mod:`tempo_lab.caches` (the
live view); this module only draws them.

Contents: :func:`sinks_figure`, :func:`deviation_figure`, :func:`partial_figure`, :func:`rolling_figure`,
:func:`cache_view`.
"""

from __future__ import annotations

import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tempo_lab import plots
from tempo_lab.caches.chunks import reuse_chunk
from tempo_lab.caches.rolling import Rolling, rolling_logprobs
from tempo_lab.loaded import LoadedModel
from tempo_lab.views import Control, Rendered, View, live_view

COLOURS = {"streaming": plots.BLUE, "window": plots.RED, "recomputed": "#444444", "first": plots.GREEN,
           "deviating": plots.ORANGE, "key_error": plots.PURPLE, "value_error": plots.BROWN}  # fmt: skip


def _panels(models: list[str], height: float = 3.6) -> tuple[Figure, list]:
    fig = plots.figure(5.2 * len(models), height)
    return fig, list(fig.subplots(1, len(models), squeeze=False)[0])


def sinks_figure(by_layer: pd.DataFrame) -> Figure:
    """The last token's attention on the first token per layer, mean over heads and prompts with its 95%
    interval, one panel per model (:func:`~tempo_lab.caches.tables.sinks_by_layer`)."""
    models = list(dict.fromkeys(by_layer.model))
    fig, axes = _panels(models)
    for ax, model in zip(axes, models, strict=True):
        part = by_layer[by_layer.model == model]
        ax.plot(part.layer, part["mean"], marker="o", color=COLOURS["streaming"])
        ax.fill_between(part.layer, part.lo, part.hi, alpha=0.25, color=COLOURS["streaming"])
        ax.set_ylim(0, 1)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("attention on the first token")
        ax.set_title(f"{model}: sink mass ({int(part.n.max())} prompts)")
    return fig


def deviation_figure(by_layer: pd.DataFrame) -> Figure:
    """A reused chunk against its recompute, per layer and model: the relative error of its keys and values
    (top) and the share of the TV that putting back that layer's recomputed cache alone closes (bottom)
    (:func:`~tempo_lab.caches.tables.chunks_by_layer`)."""
    models = list(dict.fromkeys(by_layer.model))
    fig = plots.figure(5.2 * len(models), 6.0)
    grid = fig.subplots(2, len(models), squeeze=False, sharex="col")
    for col, model in enumerate(models):
        part = by_layer[by_layer.model == model]
        top, bottom = grid[0][col], grid[1][col]
        for value in ("key_error", "value_error"):
            top.plot(part.layer, part[value], marker=".", color=COLOURS[value], label=value.replace("_", " "))
            top.fill_between(
                part.layer, part[f"{value}_lo"], part[f"{value}_hi"], alpha=0.2, color=COLOURS[value]
            )
        top.set_ylabel("‖reused − recomputed‖ / ‖recomputed‖")
        top.set_title(f"{model}: the reused chunk's cache")
        top.legend(fontsize=8)
        bottom.bar(part.layer, part.closed, color=COLOURS["recomputed"])
        spread = [part.closed - part.closed_lo, part.closed_hi - part.closed]
        bottom.errorbar(part.layer, part.closed, yerr=spread, fmt="none", ecolor="#999999", capsize=2)
        bottom.axhline(0, color="#999999", linewidth=0.8)
        bottom.set_xlabel("layer")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.set_ylabel("share of the TV closed")
        bottom.set_title("that layer's recomputed cache put back alone")
    return fig


def partial_figure(curve: pd.DataFrame, gap: pd.DataFrame) -> Figure:
    """The next-token TV against the recompute when ``k`` of the chunk's tokens are recomputed (0: the
    reuse), per selection, one panel per model (:func:`~tempo_lab.caches.tables.partial_curve`)."""
    models = list(dict.fromkeys(curve.model))
    fig, axes = _panels(models)
    for ax, model in zip(axes, models, strict=True):
        base = gap[gap.model == model].iloc[0]
        for selection, part in curve[curve.model == model].groupby("selection"):
            xs = [0, *part.tokens]
            ax.plot(xs, [base.tv, *part.tv], marker="o", color=COLOURS[selection], label=selection)
            ax.fill_between(xs, [base.tv_lo, *part.tv_lo], [base.tv_hi, *part.tv_hi], alpha=0.2,
                            color=COLOURS[selection])  # fmt: skip
        ax.axhline(base.tv / 2, color="#999999", linestyle=":", label="half the reuse's TV")
        # the prompts behind each point: those whose chunk is longer than the tokens recomputed
        n = curve[curve.model == model].groupby("tokens").n.max()
        ax.set_xticks([0, *n.index], [f"0\n{int(base.n)}", *(f"{k}\n{int(v)}" for k, v in n.items())])
        ax.set_xlabel("chunk tokens recomputed (top line), prompts measured there (bottom)")
        ax.set_ylabel("TV against the full recompute")
        ax.set_title(f"{model}: partial recompute")
        ax.legend()
    return fig


def rolling_figure(by_position: pd.DataFrame, size: int) -> Figure:
    """Mean next-token loss per bucket of the long text for each rolling variant and the recomputed window
    (its sampled steps), one panel per model (:func:`~tempo_lab.caches.tables.rolling_by_position`)."""
    models = list(dict.fromkeys(by_position.model))
    fig, axes = _panels(models)
    for ax, model in zip(axes, models, strict=True):
        for variant, part in by_position[by_position.model == model].groupby("variant", sort=False):
            colour = COLOURS[variant.split(",")[0]]
            style = ":" if "recomputed" in variant else "-"
            ax.plot(part.bucket, part["mean"], marker="o", linestyle=style, color=colour, label=variant)
            ax.fill_between(part.bucket, part.lo, part.hi, alpha=0.15, color=colour)
        ax.axvline(size, color="#999999", linestyle="--", label=f"first eviction ({size})")
        ax.set_xlabel("position in the text (start of the bucket, tokens)")
        ax.set_ylabel("next-token loss (nats)")
        ax.set_title(f"{model}: rolling caches of {size} slots")
        ax.legend(fontsize=8)
    return fig


def cache_view(lm: LoadedModel, text: torch.Tensor, prefix: torch.Tensor, chunk: torch.Tensor) -> View:
    """Notebook 11's live control. Left: the next-token loss along ``text`` ``(1, N)`` under a rolling cache
    (sinks, window, re-positioned or not) against the same kept tokens recomputed from scratch. Right: the TV
    between ``chunk`` ``(1, m)`` reused behind ``prefix`` ``(1, P)`` and its recompute, and what is left
    when one layer's recomputed cache is put back. It runs the model on every move."""
    layers = len(lm.family.modules(lm.model).layers)
    reused: list = []  # the chunk reuse, computed on the first render (bad input: the view says why)

    def update(values, progress) -> Rendered:
        sinks, window, layer = int(values["sinks"]), int(values["window"]), int(values["restore"])
        if not reused:
            reused.append(reuse_chunk(lm, prefix, chunk))
        reuse = reused[0]
        rolling = Rolling(sinks, window, reposition=values["reposition"] == "on")
        got = -rolling_logprobs(lm, text, rolling, progress=False)
        want = -rolling_logprobs(lm, text, rolling, recompute=True, progress=False)
        fig, (left, right) = plots.live_figure(10, 3.6, columns=2)
        steps = range(len(got))
        left.plot(steps, got, color=COLOURS["streaming"], label="rolling cache")
        left.plot(steps, want, color=COLOURS["recomputed"], linestyle=":", label="recomputed")
        left.axvline(rolling.size, color="#999999", linestyle="--", label="first eviction")
        left.set_xlabel("step (token of the text)")
        left.set_ylabel("next-token loss (nats)")
        left.set_title(f"{sinks} sinks + {window}, re-positioned {values['reposition']}")
        left.legend(fontsize=8)
        left_tv = float(reuse.restored[layer]) if layer >= 0 else reuse.tv
        right.bar(range(layers), reuse.restored.numpy(), color=COLOURS["recomputed"])
        if layer >= 0:
            right.bar([layer], [left_tv], color=COLOURS["deviating"])
        right.axhline(reuse.tv, color=COLOURS["window"], linestyle=":", label=f"reused: TV {reuse.tv:.3f}")
        right.set_xlabel("layer whose recomputed cache is put back")
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("TV left")
        right.set_title("chunk reuse")
        right.legend(fontsize=8)
        excess = float((got - want).mean())
        moved = "re-positioned" if rolling.reposition else "not moved"
        text_ = (f"rolling {sinks}+{window} ({moved}): mean loss {float(got.mean()):.4f} against "
                 f"{float(want.mean()):.4f} recomputed; chunk reuse TV {reuse.tv:.4f}"
                 + (f", {left_tv:.4f} with layer {layer} put back" if layer >= 0 else ""))  # fmt: skip
        return Rendered(text_, fig, {"excess": round(excess, 6), "tv": round(left_tv, 6)})

    longest = max(4, text.shape[1] - 2)
    return live_view("caches", "Rolling caches and chunk reuse", {
        "sinks": Control(4, 0, 8, 1, description="sinks"),
        "window": Control(min(16, longest), 2, longest, 2, description="window"),
        "reposition": Control("on", options=["on", "off"], description="re-position"),
        "restore": Control(-1, -1, layers - 1, 1, description="restore layer"),
    }, update)  # fmt: skip
