"""Notebook 10's figures and live view: bits per byte past the trained length, the bands' angles, the
per-layer sweep, and a live curve of the loss by position under a chosen method.

The numbers come from :mod:`tempo_lab.tpi.lengths` (scores) and :mod:`tempo_lab.extension.angles` (bands);
this module only draws them.

Contents: :func:`factor_figure`, :func:`angles_figure`, :func:`layer_figure`, :func:`length_view`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.tpi import lengths
from tempo_lab.tpi.convert import as_transformers
from tempo_lab.tpi.model import CharLM
from tempo_lab.views import Control, Rendered, View, live_view

COLOURS = {"plain": "#444444", "pi": "#1f77b4", "ntk": "#2ca02c", "yarn": "#ff7f0e", "self-extend": "#9467bd",
           "tpi": "#8c564b", "tpi-decay": "#e377c2"}  # fmt: skip


def factor_figure(table: pd.DataFrame, tolerance: float = 0.05) -> Figure:
    """Mean bits per byte (± std over the seeds) against the length, in multiples of the trained one, per
    method and TPI model; the dotted line is the plain model's 1x score plus ``tolerance``."""
    every = lengths.every_layer(table)
    fig, ax = plots.figure_with_axes(8, 4.2)
    for model, part in every.groupby("model", sort=False):
        stats = part.groupby("factor").bpc.agg(["mean", "std"])
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=model,
                    color=COLOURS.get(model), linestyle="--" if model.startswith("tpi") else "-")  # fmt: skip
    plain = every[(every.model == "plain") & (every.factor == 1)].bpc.mean()
    if not math.isnan(plain):
        ax.axhline(
            plain * (1 + tolerance), color="#999999", linestyle=":", label=f"plain at 1x + {tolerance:.0%}"
        )
    ax.set_xscale("log", base=2)
    factors = sorted(set(every.factor))
    ax.set_xticks(factors, [f"{f:g}x\n{round(f * every.trained.iloc[0])}" for f in factors])
    ax.set_xlabel("sequence length (x trained length, bytes)")
    ax.set_ylabel("bits per byte (validation)")
    ax.set_title("Char-LMs past their trained length, by method (mean ± std over seeds)")
    ax.legend(fontsize=8, ncol=2)
    return fig


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
        ax.set_xticks(range(len(bands)), [str(b) for b in bands], fontsize=7 if len(bands) > 16 else 9)
        ax.set_xlabel("rotary band (0 = highest frequency)")
        fig.colorbar(image, ax=ax, label=label)
    top.set_title(title)
    return fig


def layer_figure(table: pd.DataFrame) -> Figure:
    """Bits per byte at the per-layer sweep's factor, each method applied in one layer only, beside the same
    method in every layer and the plain model (mean ± std over the RoPE seeds)."""
    rope = table[table.architecture == "rope"]
    sweep = rope[rope.layer >= 0]
    if sweep.empty:
        raise ValueError("the table has no per-layer sweep (LengthSpec.layer_methods was empty)")
    factor = float(sweep.factor.iloc[0])
    layers = sorted(set(sweep.layer))
    methods = list(dict.fromkeys(sweep.method))
    fig, ax = plots.figure_with_axes(8, 3.8)
    width = 0.8 / len(methods)
    for i, name in enumerate(methods):
        stats = sweep[sweep.method == name].groupby("layer").bpc.agg(["mean", "std"])
        x = np.arange(len(layers)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(
            x,
            stats["mean"],
            width,
            yerr=stats["std"],
            capsize=3,
            color=COLOURS.get(name),
            label=f"{name}, one layer",
        )
        every = rope[(rope.layer == -1) & (rope.method == name) & (rope.factor == factor)].bpc.mean()
        ax.axhline(every, color=COLOURS.get(name), linestyle="--", label=f"{name}, every layer")
    plain = rope[(rope.layer == -1) & (rope.method == "plain") & (rope.factor == factor)].bpc.mean()
    ax.axhline(plain, color=COLOURS["plain"], linestyle=":", label="plain")
    lowest = min(sweep.bpc.min(), rope[rope.layer == -1].bpc.min())
    ax.set_ylim(bottom=0.9 * lowest)  # the differences, not the common floor
    ax.set_xticks(range(len(layers)), [f"layer {layer}" for layer in layers])
    ax.set_xlabel("the one layer the method rotates")
    ax.set_ylabel("bits per byte (validation)")
    ax.set_title(
        f"Where the rotation matters: each method in one layer only, at {factor:g}x the trained length"
    )
    ax.legend(fontsize=8, ncol=3)
    return fig


def length_view(model: CharLM, data: torch.Tensor, trained: int = 128, bucket: int = 32) -> View:
    """Notebook 10's live view: the loss by position (buckets of ``bucket`` bytes) of the RoPE char-LM
    ``model`` on ``data`` (1-D bytes) at ``factor`` x ``trained`` bytes under a method, beside the plain
    model's. It runs the model on every move."""
    lm = as_transformers(model, context=trained)
    methods = list(lengths.METHODS)
    longest = 16 * trained  # the factor slider's top
    if len(data) <= longest:
        raise ValueError(
            f"the live view scores windows of up to {longest} bytes: give more than {longest} bytes of text, "
            f"not {len(data)}"
        )

    def curve(name: str, length: int, window: int) -> torch.Tensor:
        with lengths.method(lm, name, length, window):
            return lengths.loss_by_position(lm, data, length)

    def update(values, progress) -> Rendered:
        factor, name, window = int(values["factor"]), values["method"], int(values["window"])
        if name not in methods:
            raise ValueError(f"no method {name!r}; choose one of {methods}")
        length = factor * trained
        plain, chosen = curve("plain", length, window), curve(name, length, window)
        edges = np.arange(0, length, bucket)
        fig, (ax,) = plots.live_figure(8, 3.4)
        for label, values_, colour in (("plain", plain, COLOURS["plain"]), (name, chosen, COLOURS[name])):
            means = [float(values_[e : e + bucket].mean()) for e in edges]
            ax.plot(edges + bucket / 2, means, marker=".", color=colour, label=label)
        ax.axvline(trained, color="#999999", linestyle=":", label=f"trained length ({trained})")
        ax.set_xlabel(f"position in the window (buckets of {bucket} bytes)")
        ax.set_ylabel("bits per byte")
        ax.set_title(
            f"{name} at {factor}x ({length} bytes)" + (f", window {window}" if name == "self-extend" else "")
        )
        ax.legend(fontsize=8)
        bpc, base = float(chosen.mean()), float(plain.mean())
        text = f"{name} at {factor}x ({length} bytes): {bpc:.4f} bits per byte against plain {base:.4f}"
        if length > trained:
            past, base_past = float(chosen[trained:].mean()), float(plain[trained:].mean())
            text += f"; past byte {trained}: {past:.4f} against {base_past:.4f}"
        return Rendered(text, fig, {"bpc": round(bpc, 6), "plain": round(base, 6)})

    return live_view("context_extension", "Past the trained length", {
        "factor": Control(8, 1, 16, 1, description="x trained"),
        "method": Control("yarn", options=methods, description="method"),
        "window": Control(32, 8, trained - 8, 8, description="SE window"),
    }, update)  # fmt: skip
