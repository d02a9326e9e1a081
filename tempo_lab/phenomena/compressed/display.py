"""Compressed thoughts (notebook 05): the likely next tokens placed after a position gap, each expanded into a
short path.

Driver: :class:`~tempo_lab.generators.CompressedThoughtGenerator` (a
:class:`~tempo_lab.generators.CompressedResult`). Here:

- :func:`compressed_runs`, :func:`combined_exploration`: the runs notebook 05 compares (over gaps; seed 000's
  combined approach);
- :func:`paths_table`, :func:`path_agreement`, :func:`thought_paths`, :func:`thought_paths_by_gap`: its
  tables and figures;
- :func:`render`: the paths at one gap, cut to a threshold and a length, shared by :func:`view` (replay) and
  :func:`explorer` (live: ``path_length`` batched cached steps off the held prefix);
- :mod:`.study`: paths over a prompt set and the seed claim they decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab import plots
from tempo_lab.generators import CompressedResult, CompressedThoughtGenerator
from tempo_lab.labels import plain
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena.compressed.probe import NAME, TITLE
from tempo_lab.plots import CI, n_prompts
from tempo_lab.views import Control, Rendered, View, live_view


def thought_paths(paths, title: str, ax: Axes | None = None) -> Figure:
    """Each path as a row of token boxes (candidate first), shaded by the probability of each token."""
    fig = plots.figure(12, 0.6 + 0.45 * max(1, len(paths)) + 0.6) if ax is None else ax.figure
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
                    ec=plots.BLUE if j == 0 else "white",
                    lw=1.5 if j == 0 else 0.5,
                )
            )
            shown = repr(tok)[1:-1].replace(" ", "\u00b7")[:9]  # a leading space shown as a middle dot
            ax.text(j + 0.48, y + 0.5, shown, ha="center", va="center", fontsize=plots.SMALL)
    ax.set_xlim(0, width)
    ax.set_ylim(0, max(1, len(paths)))
    ax.set_yticks(
        [len(paths) - 1 - r + 0.5 for r in range(len(paths))],
        [f"{p.candidate.token!r} {p.candidate.prob:.3f}" for p in paths],
        fontsize=8,
    )
    ax.set_xticks([j + 0.48 for j in range(width)], [str(j) for j in range(width)], fontsize=plots.SMALL)
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
    fig = plots.figure(12, (0.45 * n_paths + 0.9) * len(gaps) + 0.5)
    axes = fig.subplots(len(gaps), 1, squeeze=False)[:, 0]
    for ax, gap in zip(axes, gaps, strict=True):
        res = runs[gap]
        thought_paths(res.paths, f"gap {gap:g}: candidates at position {res.prompt_len + res.gap:g}", ax)
    fig.suptitle(f"Compressed-thought paths after {prompt!r}")
    return fig


# --- the render both views share ---


def render(result: CompressedResult, threshold: float, path_length: int) -> Rendered:
    """The paths of ``result`` that a run with ``threshold`` and ``path_length`` would give (greedy runs:
    :meth:`~tempo_lab.generators.CompressedResult.paths_within`)."""
    paths = result.paths_within(threshold, path_length)
    best = paths[0]
    text = (
        f"gap {result.gap:g}, threshold {threshold:g}, {path_length} tokens: {len(paths)} paths; "
        f"{best.candidate.token!r} {best.candidate.prob:.4f} -> {best.text!r}"
    )
    fig, (ax,) = plots.live_figure(12, 0.6 + 0.45 * len(paths) + 0.6)
    fig.subplots_adjust(left=0.16, bottom=0.25)
    thought_paths(paths, f"{result.prompt!r}: gap {result.gap:g}, threshold {threshold:g}", ax)
    state = {"candidates": [[p.candidate.token, round(p.candidate.prob, 6)] for p in paths],
             "paths": [p.text for p in paths], "first_position": result.prompt_len + result.gap}  # fmt: skip
    return Rendered(text, fig, state)


def view(runs: Mapping[Any, CompressedResult]) -> View:
    """Notebook 05's replay: the paths at one gap, with a higher threshold and a shorter length read off the
    runs (made with the lowest threshold and the longest length)."""
    gaps = plain(list(runs))
    longest = max(len(p.token_ids) for r in runs.values() for p in r.paths) - 1
    lowest = min(r.threshold for r in runs.values())
    options = sorted({round(lowest, 4), *[t for t in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5) if t > lowest]})

    def show(gap, threshold, path_length) -> Rendered:
        if gap not in runs:
            raise ValueError(f"gap {gap} was not run; choose one of {gaps}")
        return render(runs[gap], threshold, path_length)

    return View(NAME, show, {
        "gap": Control(gaps[1] if len(gaps) > 1 else gaps[0], options=gaps, description="gap"),
        "threshold": Control(options[0], options=options, description="threshold"),
        "path_length": Control(longest, 1, max(1, longest), 1, description="path length"),
    }, title=TITLE)  # fmt: skip


def explorer(session: LiveSession) -> View:
    """Live compressed thoughts: type a prompt, move the gap, the threshold and the path length."""
    gen = CompressedThoughtGenerator(session.lm)  # one core for every update
    controls = {
        "prompt": Control("The answer is", kind="text", description="prompt"),
        "gap": Control(5.0, 0.0, 50.0, 0.5, description="gap"),
        "threshold": Control(0.05, 0.01, 0.5, 0.01, description="threshold"),
        "path_length": Control(8, 1, 20, 1, description="path length"),
    }

    def update(values, progress) -> Rendered:
        prefix = session.use_prompt(values["prompt"])
        res = gen.generate(values["prompt"], gap=values["gap"], threshold=values["threshold"],
                           path_length=int(values["path_length"]), progress=False, prefix=prefix)  # fmt: skip
        return render(res, res.threshold, int(values["path_length"]))

    return live_view(NAME, TITLE, controls, update, note=session.note)


def figure(table: pd.DataFrame) -> Figure:
    """Path agreement with gap 0 and repetition (degeneration) against the gap."""
    fig = plots.figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    sns.pointplot(table, x="gap", y="agreement", ax=left, color=plots.BLUE, native_scale=True, **CI)
    left.set(xlabel="gap", ylabel="share of path tokens as at gap 0", title="Agreement", ylim=(0, 1.05))
    sns.pointplot(table, x="gap", y="repetition", ax=right, color=plots.ORANGE, native_scale=True, **CI)
    right.set(xlabel="gap", ylabel="share of repeated tokens in a path", title="Degeneration")
    fig.suptitle(f"Compressed thoughts over {n_prompts(table)} prompts (95% CI)")
    return fig
