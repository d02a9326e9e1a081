"""Retroactive exploration's figures and views: notebook 03's heatmap, the render its replay view and live
explorer share (a move is one cached step of two branches; the curve is recomputed only when the prompt,
token, range or the layers and bands that see the move change), and the study's figure and replay.

Contents: :func:`heatmap`, :func:`render`, :func:`view`, :func:`explorer`, :func:`figure`, :func:`study_view`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tempo_lab import plots, positions
from tempo_lab.generators import RetroactivePositionGenerator, RetroactiveResult
from tempo_lab.interventions import intervene
from tempo_lab.labels import plain, token_label
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.retroactive.probe import NAME, TITLE, HeatTable, _seen_by, band_choices
from tempo_lab.plots import CI, n_prompts
from tempo_lab.summaries import tv
from tempo_lab.views import Control, Rendered, View, live_view
from tempo_lab.views.kinds import kind_view


def heatmap(heat: HeatTable, max_labels: int = 21) -> Figure:
    """Heatmap of next-token probability (rows = tokens, columns = gaps), the top token at each gap marked
    with a dot."""
    table = heat.table
    fig = plots.figure(11, 0.9 + 0.32 * len(table) + 1.2)
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
        f"Next-token probability after {heat.prompt!r} + {heat.token!r} "
        "placed at a gap (dots: top prediction)"
    )
    fig.colorbar(im, ax=ax, label="probability")
    return fig


def render(
    result: RetroactiveResult,
    lm: LoadedModel,
    gap: float,
    max_gap: float,
    top_k: int = 5,
    kept: plots.LiveFigure | None = None,
) -> Rendered:
    """The placed token at ``gap`` (an explored one) against gap 0, and the curves of the ``top_k`` tokens at
    gap 0 over the explored gaps up to ``max_gap``; the sentence follows the most probable of them.
    ``kept``: a live explorer's figure, updated in place while the token and the curves' tokens stay."""
    at = next((i for i, g in enumerate(result.gaps) if abs(g - gap) < 1e-6), None)
    if at is None:
        raise ValueError(f"gap {gap:g} was not explored; choose one of {plain(result.gaps)}")
    cols = [i for i, g in enumerate(result.gaps) if g <= max_gap + 1e-9]
    if not cols:
        raise ValueError(f"no explored gap is <= {max_gap:g}")
    probs, reference = result.probs.double(), result.reference.double()
    tracked = reference.topk(top_k).indices.tolist()
    lead = tracked[0]
    curve = probs[cols, lead]
    best = max(range(len(cols)), key=lambda j: (float(curve[j]), -result.gaps[cols[j]]))
    leads = int((probs[cols].argmax(-1) == lead).sum())
    shown = probs[at].topk(top_k).indices.tolist()
    top = [[lm.token_str(i), round(float(probs[at, i]), 6)] for i in shown]
    tv_ = tv(probs[at], reference)
    lo, hi = result.gaps[cols[0]], result.gaps[cols[-1]]
    text = (
        f"{result.token!r} at gap {gap:g} (position {result.positions[at]:g}): top {top[0][0]!r} "
        f"{top[0][1]:.4f}, TV from gap 0 {tv_:.4f}; {lm.token_str(lead)!r} over gaps {lo:g}..{hi:g}: "
        f"p at gap {lo:g} = {float(curve[0]):.4f}, highest {float(curve[best]):.4f} at gap "
        f"{result.gaps[cols[best]]:g}; top prediction at {leads} of {len(cols)} gaps"
    )
    bars = [[t for t, _ in top], [probs[at, shown].tolist(), reference[shown].tolist()], f"gap {gap:g}"]
    xs = [result.gaps[i] for i in cols]
    curves = [probs[cols, i].tolist() for i in tracked]
    lines = [token_label(lm.token_str(i)) for i in tracked]
    title = f"gap-0 top tokens over gaps {lo:g}..{hi:g}"

    def build() -> Figure:
        fig, (left, right) = plots.live_figure(11, 3.8, 2)
        plots.paired_bars(left, bars[0], bars[1], [bars[2], "gap 0"],
                          f"next token after {token_label(result.token)}")  # fmt: skip
        for ys, label in zip(curves, lines, strict=True):
            right.plot(xs, ys, marker=".", ms=3, label=label)
        right.axvline(gap, color="k", lw=0.8, ls=":")
        right.set(xlabel="gap (positions after the prompt)", ylabel="probability", title=title)
        right.legend(fontsize=plots.SMALL)
        return fig

    keep = kept or plots.LiveFigure()
    fig, new = keep.get((result.token, tuple(lines), len(bars[0])), build)
    if not new:
        _update_move(fig, bars, xs, curves, gap, title)
    state = {"position": result.positions[at], "gap": float(gap), "top": top, "tv_from_gap0": round(tv_, 6),
             "lead": lm.token_str(lead), "lead_top_at": leads}  # fmt: skip
    return Rendered(text, fig, state)


def _update_move(
    fig: Figure, bars: list, xs: list[float], curves: list[list[float]], gap: float, title: str
) -> None:
    """A kept move figure brought to another gap: the bars' heights, tokens and legend, the curves' data (a
    live curve gains each explored gap), the marker and the title; both axes rescaled."""
    left, right = fig.axes
    plots.update_paired_bars(left, bars[0], bars[1], [bars[2], "gap 0"])
    *drawn, marker = right.get_lines()
    for line, ys in zip(drawn, curves, strict=True):
        line.set_data(xs, ys)
    marker.set_xdata([gap, gap])
    right.set_title(title)
    right.relim()
    right.autoscale_view()


def view(result: RetroactiveResult, lm: LoadedModel) -> View:
    """Notebook 03's replay over an exploration of many gaps: the gap the token sits at, and the range."""
    gaps = plain(result.gaps)
    step = gaps[1] - gaps[0] if len(gaps) > 1 else 1
    return View(NAME, lambda gap, max_gap: render(result, lm, gap, max_gap), {
        "gap": Control(gaps[min(3, len(gaps) - 1)], options=gaps, description="token at gap"),
        "max_gap": Control(gaps[-1], gaps[0], gaps[-1], step, description="curve up to gap"),
    }, title=TITLE)  # fmt: skip


def explorer(session: LiveSession) -> View:
    """The live retroactive move: type a prompt and a token, move the token to any (fractional) gap; on a
    rotary model, choose the layers and the rotary bands that see the move (the others see it at gap 0):
    each change is one cached step, as a move is."""
    lm = session.lm
    gen = RetroactivePositionGenerator(lm)
    curve: dict[tuple, RetroactiveResult] = {}
    kept = plots.LiveFigure()
    controls = {
        "prompt": Control("Once upon a time", kind="text", description="prompt"),
        "token": Control(",", kind="text", description="token (one token; empty = greedy next)"),
        "gap": Control(0.5, 0.0, 100.0, 0.1, description="position after the prompt (gap)"),
        "gap_range": Control(20, 1, 100, 1, description="curve over gaps 0 to"),
    }
    n_layers = lm.model.config.num_hidden_layers
    if lm.family.has_bands:
        controls["layers_from"] = Control(0, 0, n_layers - 1, 1, description="seen from layer")
        controls["layers_to"] = Control(n_layers - 1, 0, n_layers - 1, 1, description="to layer")
        controls["bands"] = Control("all", options=band_choices(lm), description="by rotary bands")

    def update(values, progress) -> Rendered:
        prefix = session.use_prompt(values["prompt"])
        token_id, t = session.token_id(values["token"]), prefix.length
        seen = (int(values.get("layers_from", 0)), int(values.get("layers_to", n_layers - 1)))
        bands = values.get("bands", "all")
        key = (session.prompt, token_id, int(values["gap_range"]), session.prefills, seen, bands)
        grid = [t + g for g in positions.grid(0, key[2], max(0.5, key[2] / 40))] if key not in curve else []
        placed = [t + float(values["gap"]), *grid]
        edits = [] if seen == (0, n_layers - 1) and bands == "all" else _seen_by(
            lm, t, [p - t for p in placed] + [0.0], seen, bands)  # fmt: skip
        with intervene(lm, *edits):
            moved = gen.explore(session.prompt, positions=placed, token=token_id, prefix=prefix)
        if grid:
            curve.clear()
            curve[key] = moved
        rendered = render(curve[key].merged(moved), lm, float(values["gap"]), float(values["gap_range"]),
                          kept=kept)  # fmt: skip
        if edits:
            rendered.text += f"; the move seen by layers {seen[0]}-{seen[1]}, bands {bands} only"
        rendered.state.update(seen_by_layers=list(seen), seen_by_bands=bands)
        return rendered

    return live_view(NAME, TITLE, controls, update, note=session.note)


def figure(table: pd.DataFrame) -> Figure:
    """TV against gap 0 and top-1 stability of the greedy next token re-placed at each gap."""
    fig = plots.figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    sns.pointplot(table, x="gap", y="tv", ax=left, color=plots.RED, native_scale=True, **CI)
    left.set(xlabel="gap", ylabel="total variation vs gap 0", title="Distribution shift")
    sns.pointplot(table.assign(same=table["top1_same"].astype(float)), x="gap", y="same", ax=right,
                  color=plots.GREEN, native_scale=True, **CI)  # fmt: skip
    right.set(xlabel="gap", ylabel="share with the gap-0 top token", title="Top-1 stability", ylim=(0, 1.05))
    fig.suptitle(f"Retroactive re-positioning over {n_prompts(table)} prompts (95% CI)")
    return fig


def study_view(study: Any) -> View:
    """Notebook 06's replay over the stored study: the greedy token re-placed at one gap, per prompt kind."""

    def say(kind, gap, rows, interval):
        kept = rows.top1_same.mean()
        text = f"{kind}, gap +{gap:g}: TV {interval} over {len(rows)} prompts; top-1 kept in {kept:.1%}"
        return text, {"top1_kept": round(float(kept), 6)}

    def label(kind, gap):
        return f"{kind} prompts, greedy token re-placed at +{gap:g}", "TV vs gap 0"

    return kind_view(NAME, TITLE, study.table(NAME), "gap", "tv", label, say)
