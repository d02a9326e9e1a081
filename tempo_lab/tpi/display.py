"""Tables, figures and live views of the char-LMs: notebook 08 (TPI against RoPE, from a TPI study folder's
records) and notebook 10, part a (the char-LMs past their trained length, from :mod:`tempo_lab.tpi.lengths`).

Contents:
- :func:`bpc_table`: mean +/- std over seeds of train / val / test BPC (and val at 4x the training length),
  one row per architecture, with its parameter count and training seconds.
- :func:`gradient_table`: the phase projections' mean gradient norms and their ratios to omega's.
- :func:`decay_lengths`: the memory lengths a learned-decay model chose, ``1 / (1 - lambda)`` per layer.
- :func:`recall_table`: recall accuracy (all queries, and the first query alone) per architecture.
- :func:`curves`: validation BPC against the step, mean over seeds with the min-max band.
- :func:`recall_curves`: first-query recall accuracy against the step.
- :func:`shift_plot`: TV of the next-byte distribution against a gap (RoPE) or an inserted phase (TPI).
- :func:`shift_view`: the live view of that move: a model, an amount and where the move starts.
- :func:`factor_figure`, :func:`layer_figure`, :func:`positions_figure`, :func:`length_view`: notebook 10's
  bits per byte past the trained length, the per-layer sweep, Self-Extend against the trained-length window
  by position, and a live curve of the loss by position under a chosen method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.extension.display import COLOURS
from tempo_lab.labels import token_label
from tempo_lab.plots import figure
from tempo_lab.summaries import tv
from tempo_lab.tpi import lengths
from tempo_lab.tpi.convert import as_transformers
from tempo_lab.tpi.model import CharLM
from tempo_lab.tpi.probes import shifted_distribution
from tempo_lab.views import Control, Rendered, View, live_view

SPLITS = ("train", "val", "test", "val_long")


def bpc_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: ``<split>`` as ``mean +/- std`` strings, plus the numeric means."""
    rows = []
    for arch, part in runs.groupby("architecture", sort=False):
        row = {"architecture": arch, "seeds": len(part), "parameters": int(part.parameters.iloc[0])}
        for split in SPLITS:
            row[split] = f"{part[split].mean():.3f} ± {part[split].std(ddof=1) if len(part) > 1 else 0:.3f}"
        row["seconds per run"] = round(float(part.seconds.mean()))
        rows.append(row)
    return pd.DataFrame(rows)


def means(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of every split's BPC per architecture (numeric), indexed by architecture."""
    return runs.groupby("architecture")[list(SPLITS)].agg(["mean", "std"])


def gradient_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean gradient norm of each phase projection over training (mean over seeds), and its ratio to
    omega's."""
    rows = []
    for arch, part in runs.groupby("architecture", sort=False):
        norms = pd.DataFrame(list(part.grad_norms)).mean()
        if norms.empty:
            continue
        row = {"architecture": arch, **{f"|grad {k}|": float(v) for k, v in norms.items()}}
        for k in norms.index.drop("omega", errors="ignore"):
            row[f"{k} / omega"] = float(norms[k] / norms["omega"])
        rows.append(row)
    return pd.DataFrame(rows)


def decay_lengths(model) -> pd.DataFrame:
    """Per layer of a ``memory="decay"`` model: quartiles of each channel's memory ``1 / (1 - lambda)`` in
    bytes (the notes' "13-17 tokens")."""
    rows = []
    for k, block in enumerate(model.blocks):
        lengths = (1 / (1 - block.mix.decay().detach())).double()
        q = lengths.quantile(lengths.new_tensor([0.25, 0.5, 0.75])).tolist()
        rows.append({"layer": k, "q25": q[0], "median": q[1], "q75": q[2], "max": float(lengths.max())})
    return pd.DataFrame(rows)


def recall_table(recall: pd.DataFrame) -> pd.DataFrame:
    """Per architecture: first-query and all-query accuracy, mean and range over seeds."""
    rows = []
    for arch, part in recall.groupby("architecture", sort=False):
        first, every = part["first"], part["accuracy"]
        rows.append({
            "architecture": arch, "seeds": len(part),
            "first query": f"{first.mean():.3f} ({first.min():.3f}-{first.max():.3f})",
            "all queries": f"{every.mean():.3f} ({every.min():.3f}-{every.max():.3f})",
            "seeds above 0.9 (first query)": int((first > 0.9).sum()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def curves(runs: pd.DataFrame) -> Figure:
    """Validation BPC against the training step: mean over seeds, band from min to max."""
    fig = figure(8, 4)
    ax = fig.subplots()
    for arch, part in runs.groupby("architecture", sort=False):
        table = pd.DataFrame([c for curve in part.curve for c in curve])
        stats = table.groupby("step")["val_bpc"].agg(["mean", "min", "max"])
        (line,) = ax.plot(stats.index, stats["mean"], label=arch, lw=1.5)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.15)
    title = "Training curves (mean over seeds, min-max band)"
    ax.set(xlabel="training step", ylabel="validation bits per byte", title=title)
    ax.legend(fontsize=8)
    return fig


def recall_curves(recall: pd.DataFrame, floor: float) -> Figure:
    """First-query recall accuracy against the step, one line per seed; ``floor``: the accuracy without any
    key lookup (:func:`tempo_lab.tpi.recall.blind_accuracy`)."""
    fig = figure(8, 3.6)
    ax = fig.subplots()
    colors: dict[str, str] = {}
    for _, row in recall.iterrows():
        table = pd.DataFrame(row.curve)
        label = None if row.architecture in colors else row.architecture
        (line,) = ax.plot(table.step, table["first"], color=colors.get(row.architecture), lw=1.2, label=label)
        colors.setdefault(row.architecture, line.get_color())
    label = f"most frequent stored value, no lookup ({floor:.3f})"
    ax.axhline(floor, color="grey", ls=":", lw=1, label=label)
    ax.set(xlabel="training step", ylabel="first-query accuracy", ylim=(0, 1.02),
           title="Associative recall: 4 key-value pairs in context, one line per seed")  # fmt: skip
    ax.legend(fontsize=8)
    return fig


def shift_plot(table: pd.DataFrame) -> Figure:
    """Mean TV against the shift, RoPE (positions) beside TPI (radians of phase)."""
    models = list(dict.fromkeys(table.model))
    fig = figure(4 * len(models), 3.4)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, name in zip(axes, models, strict=True):
        part = table[table.model == name].groupby("amount")["tv"].agg(["mean", "sem"])
        ax.errorbar(part.index, part["mean"], yerr=1.96 * part["sem"], marker="o", capsize=3)
        unit = "radians of inserted phase" if name.startswith("tpi") else "positions of gap"
        ax.set(xlabel=unit, ylabel="TV of the next byte vs no shift", title=name)
    fig.suptitle("A gap (RoPE) against an inserted phase (TPI), mean over prompts with 95% CI")
    return fig


def shift_view(models: dict[str, CharLM], text: str) -> View:
    """Notebook 08's live view: the next byte after ``text`` when every byte from ``at`` on is moved by
    ``amount`` (positions for the RoPE baseline, radians of phase for a TPI model). It runs the chosen small
    model on every move. ``models``: name -> trained model."""
    names = list(models)
    ids = torch.tensor([list(text.encode("utf-8"))])

    def update(values, progress) -> Rendered:
        model, amount, at = values["model"], float(values["amount"]), int(values["at"])
        if model not in models:
            raise ValueError(f"no model {model!r}; choose one of {names}")
        base = shifted_distribution(models[model], ids, at, 0.0)
        moved = shifted_distribution(models[model], ids, at, amount)
        tv_ = tv(moved, base)
        top = moved.topk(8)
        labels = [token_label(bytes([int(i)]).decode("latin-1")) for i in top.indices]
        fig, (ax,) = plots.live_figure(7, 3.2)
        plots.top_token_bars(labels, top.values.tolist(), "", ax)
        unit = "positions" if not models[model].config.is_tpi else "radians"
        ax.set_title(f"{model}: next byte after {text[-24:]!r}, bytes {at}.. moved by {amount:g} {unit}")
        text_ = f"{model}, move {amount:g} {unit} from byte {at}: TV {tv_:.4f} against no move"
        return Rendered(text_, fig, {"tv": round(tv_, 6)})

    return live_view("tpi_shift", "TPI shift", {
        "model": Control(names[0], options=names, description="model"),
        "amount": Control(1.0, 0.0, 8.0, 0.25, description="move by"),
        "at": Control(len(ids[0]) // 2, 1, len(ids[0]) - 1, 1, description="from byte"),
    }, update)  # fmt: skip


def factor_figure(table: pd.DataFrame, tolerance: float = 0.05) -> Figure:
    """Left: mean bits per byte (± std over the seeds) against the length, in multiples of the trained one,
    per method and TPI model. Right: each one's bits per byte over its own 1x score, what the verdicts
    compare with ``1 + tolerance`` (the dotted line)."""
    every = lengths.every_layer(table)
    fig = plots.figure(12, 4.2)
    left, right = fig.subplots(1, 2)
    for model, part in every.groupby("model", sort=False):
        stats = part.groupby("factor").bpc.agg(["mean", "std"])
        style = {"color": COLOURS.get(model), "linestyle": "--" if model.startswith("tpi") else "-"}
        left.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=model,
                      **style)
        if 1 in stats.index:
            right.plot(stats.index, stats["mean"] / stats.loc[1, "mean"], marker="o", label=model, **style)
    right.axhline(1 + tolerance, color="#999999", linestyle=":", label=f"its own 1x + {tolerance:.0%}")
    factors = sorted(set(every.factor))
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(factors, [f"{f:g}x\n{round(f * every.trained.iloc[0])}" for f in factors])
        ax.set_xlabel("sequence length (x trained length, bytes)")
    left.set(ylabel="bits per byte (validation)", title="Bits per byte (mean ± std over seeds)")
    right.set(ylabel="bits per byte / its own 1x", title="Against its own trained length")
    plots.legend_outside(right, ncols=1)
    fig.suptitle("Char-LMs past their trained length, by method")
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
        ax.errorbar(x, stats["mean"], yerr=stats["std"], fmt="o", capsize=3, color=COLOURS.get(name),
                    label=f"{name}, one layer")  # points, not bars: the axis need not start at 0
        every = rope[(rope.layer == -1) & (rope.method == name) & (rope.factor == factor)].bpc.mean()
        ax.axhline(every, color=COLOURS.get(name), linestyle="--", label=f"{name}, every layer")
    plain = rope[(rope.layer == -1) & (rope.method == "plain") & (rope.factor == factor)].bpc.mean()
    ax.axhline(plain, color=COLOURS["plain"], linestyle=":", label="plain")
    lowest = min(sweep.bpc.min(), rope[rope.layer == -1].bpc.min())
    ax.set_ylim(bottom=0.9 * lowest)  # the differences, not the common floor (points: no bar is cut)
    ax.set_xticks(range(len(layers)), [f"layer {layer}" for layer in layers])
    ax.set_xlabel("the one layer the method rotates")
    ax.set_ylabel("bits per byte (validation)")
    ax.set_title(
        f"Where the rotation matters: each method in one layer only, at {factor:g}x the trained length"
    )
    plots.legend_outside(ax)
    return fig


def positions_figure(positions: pd.DataFrame, factor: float = 8.0, margin: float = 0.01) -> Figure:
    """Two panels from :func:`~tempo_lab.tpi.by_position.read_positions`. Left: bits by position at
    ``factor`` x the trained length under each method and the trained-length ``window`` (mean over the
    seeds). Right: Self-Extend minus the window past the trained length at each factor, per seed and its mean
    with a 95% Student-t interval over the seeds, against ``margin`` below zero (what "uses the longer
    context" needs)."""
    from tempo_lab import stats
    from tempo_lab.tpi.by_position import past_trained

    fig = plots.figure(11, 4)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    trained = int(positions.trained.iloc[0])
    at = positions[positions.factor == factor]
    for name, part in at.groupby("method", sort=False):
        mean = part.groupby("bin").bits.mean()
        style = {"color": "#000000", "linestyle": "--"} if name == "window" else {"color": COLOURS.get(name)}
        left.plot(mean.index, mean.values, label=name, linewidth=1.2, **style)
    left.axvline(trained, color="#999999", linestyle=":", label=f"trained length ({trained})")
    left.set_xlabel("position in the window (bytes)")
    left.set_ylabel("bits per byte (mean over seeds)")
    left.set_title(f"Loss by position at {factor:g}x ({round(factor * trained)} bytes)")
    left.legend(fontsize=8, ncol=2)
    far = past_trained(positions).pivot_table(index=["seed", "factor"], columns="method", values="bits")
    diff = (far["self-extend"] - far["window"]).rename("diff").reset_index()
    factors = sorted(diff.factor.unique())
    for i, f in enumerate(factors):
        values = diff[diff.factor == f]["diff"].to_numpy()
        mean, lo, hi = stats.t_interval(values)
        right.scatter([f] * len(values), values, color="#999999", s=12, zorder=2)
        right.errorbar([f], [mean], yerr=[[mean - lo], [hi - mean]], color=COLOURS["self-extend"], marker="o",
                       capsize=4, zorder=3, label="mean, 95% t-interval over seeds" if i == 0 else None)
    right.axhline(0, color="#000000", linewidth=0.8)
    right.axhline(-margin, color="#999999", linestyle=":", label=f"margin: {margin:g} bits below the window")
    right.set_xscale("log", base=2)
    right.set_xticks(factors, [f"{f:g}x" for f in factors])
    right.set_xlabel("length (x trained)")
    right.set_ylabel("Self-Extend minus window (bits)")
    right.set_title(f"Past byte {trained}: Self-Extend against the window")
    right.legend(fontsize=8)
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
