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

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab import checks, plots
from tempo_lab.generators import CompressedResult, CompressedThoughtGenerator, RetroactivePositionGenerator
from tempo_lab.labels import plain, plain_number
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.summaries import tv
from tempo_lab.views import Control, Rendered, View, live_view

NAME, TITLE = "compressed", "Compressed"


def compressed_runs(
    lm: LoadedModel, prompt: str, gaps: Sequence[float], **options: Any
) -> dict[int | float, CompressedResult]:
    """Compressed-thought runs of ``prompt`` at each gap, with the same ``options`` (``threshold``,
    ``max_candidates``, ``path_length``, …: see :meth:`CompressedThoughtGenerator.generate`) and no progress
    bar. The candidates are the same at every gap (they come from the prompt's own next-token distribution);
    the paths differ. Keys are the gaps (``int`` when integral)."""
    gaps = [checks.nonnegative(f"gaps[{i}]", g) for i, g in enumerate(checks.as_list(gaps))]
    if not gaps:
        raise ValueError("give at least one gap")
    gen = CompressedThoughtGenerator(lm)
    return {plain_number(g): gen.generate(prompt, gap=g, progress=False, **options) for g in gaps}


def combined_exploration(
    lm: LoadedModel, prompt: str, gap: float | str, regaps: Sequence[float], **options: Any
) -> tuple[CompressedResult, pd.DataFrame]:
    """Seed 000's combined approach: compressed-thought paths at ``gap``, then each path's first token (its
    candidate) re-explored retroactively at every gap of ``regaps``, all in **one** batched cached step over
    the shared prompt prefix (``candidates x regaps`` branches; the prefix is prefilled once for both).

    Returns the compressed result and one row per (candidate, regap): ``position``, the top next token there
    (``top1``, ``p1``), ``tv_vs_path``: the total variation from the distribution that chose the path's
    second token (the candidate at the path's own gap), and ``continues_path``: whether that top token is the
    path's second token. ``options`` go to :meth:`CompressedThoughtGenerator.generate`.
    """
    regaps = [checks.nonnegative(f"regaps[{i}]", g) for i, g in enumerate(checks.as_list(regaps))]
    if not regaps:
        raise ValueError("give at least one regap")
    gen, retro = CompressedThoughtGenerator(lm), RetroactivePositionGenerator(lm)
    _, ids = lm.encode_prompt(prompt)
    prefix = gen.core.prefill(ids)
    res = gen.generate(prompt, gap=gap, progress=False, keep_logits=True, prefix=prefix, **options)
    t = prefix.length
    pairs = [(path, g) for path in res.paths for g in regaps]
    logits = retro.place(prefix, [p.candidate.token_id for p, _ in pairs], [t + g for _, g in pairs])
    probs = torch.softmax(logits.float(), -1)  # (candidates * regaps, vocab)
    rows = []
    for (path, g), row in zip(pairs, probs, strict=True):
        own = torch.softmax(path.logits[1], -1) if len(path.token_ids) > 1 else row
        tv_ = tv(row, own)
        top = int(row.argmax())
        rows.append({
            "candidate": repr(path.candidate.token),
            "path_gap": res.gap,
            "regap": plain_number(g),
            "position": t + g,
            "top1": repr(lm.token_str(top)),
            "p1": float(row[top]),
            "tv_vs_path": tv_,
            "continues_path": len(path.token_ids) > 1 and top == path.token_ids[1],
        })  # fmt: skip
    return res, pd.DataFrame(rows)


def paths_table(runs: Mapping[Any, Any]) -> pd.DataFrame:
    """Every path of every gap: one row per (candidate, gap) with the path's text (candidate included),
    length and mean step probability."""
    rows = []
    for gap, res in runs.items():
        for rank, path in enumerate(res.paths):
            rows.append(
                {
                    "candidate": repr(path.candidate.token),
                    "p_candidate": path.candidate.prob,
                    "gap": gap,
                    "first_position": path.positions[0],
                    "path": repr(path.text),
                    "tokens": len(path.token_ids),
                    "mean_step_prob": sum(path.step_probs[1:]) / max(1, len(path.step_probs) - 1),
                    "rank": rank,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["rank", "gap"], kind="stable").drop(columns="rank").reset_index(drop=True)


def path_agreement(runs: Mapping[Any, CompressedResult], reference_gap: Any | None = None) -> pd.DataFrame:
    """How each candidate's path at each gap agrees with its path at ``reference_gap`` (default: the first
    gap): the fraction of path slots holding the same token, and the first slot where they differ (``None``
    when identical). ``runs``: gap → CompressedResult. One row per candidate, one column pair per gap."""
    gaps = list(runs)
    ref = runs[gaps[0] if reference_gap is None else reference_gap]
    rows = []
    for k, base in enumerate(ref.paths):
        row: dict[str, Any] = {"candidate": repr(base.candidate.token)}
        for gap in gaps:
            other = runs[gap].paths[k]
            if other.candidate.token_id != base.candidate.token_id:
                raise ValueError(f"gap {gap} has different candidates than the reference gap")
            n = max(len(base.token_ids), len(other.token_ids))
            same = [
                i < len(base.token_ids)
                and i < len(other.token_ids)
                and base.token_ids[i] == other.token_ids[i]
                for i in range(n)
            ]
            row[f"same@{gap:g}"] = sum(same) / n
            row[f"differs from@{gap:g}"] = next((i for i, s in enumerate(same) if not s), None)
        rows.append(row)
    table = pd.DataFrame(rows)
    for gap in gaps:
        table[f"differs from@{gap:g}"] = table[f"differs from@{gap:g}"].astype("Int64")
    return table


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
                    ec="#1f77b4" if j == 0 else "white",
                    lw=1.5 if j == 0 else 0.5,
                )
            )
            shown = repr(tok)[1:-1].replace(" ", "\u00b7")[:9]  # a leading space shown as a middle dot
            ax.text(j + 0.48, y + 0.5, shown, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, width)
    ax.set_ylim(0, max(1, len(paths)))
    ax.set_yticks(
        [len(paths) - 1 - r + 0.5 for r in range(len(paths))],
        [f"{p.candidate.token!r} {p.candidate.prob:.3f}" for p in paths],
        fontsize=8,
    )
    ax.set_xticks([j + 0.48 for j in range(width)], [str(j) for j in range(width)], fontsize=7)
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
