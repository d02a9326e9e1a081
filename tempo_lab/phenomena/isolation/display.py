"""Isolated against visible parallel sets (notebook 04): the same TEMPO sets under two masks.

- :func:`parallel_pairs` (:class:`ModePair`): each threshold's runs in both modes, and the isolated run's
  sets replayed in visible mode (same tokens in the same slots, only the mask differs);
- :func:`mode_sets_table`, :func:`mode_texts_table`, :func:`mode_mass_table`, :func:`mode_maps`,
  :func:`mode_mass_bars`: notebook 04's tables and figures;
- :func:`view`: the replay, drawn by :func:`tempo_lab.phenomena.tempo_sets.render` (the live TEMPO explorer's
  render) with the other mode beside;
- :mod:`.study`: the two modes over a prompt set, and the two seed claims they decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tempo_lab import checks, masks, plots
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.tempo_sets import render as render_run
from tempo_lab.summaries import first_difference, later_mass, set_spans
from tempo_lab.views import Control, View

NAME, TITLE = "isolation", "Isolated vs visible"
MODE_COLOR = {"isolated": "#1f77b4", "visible": "#ff7f0e"}


@dataclass
class ModePair:
    """One prompt and threshold in both intra-set modes.

    ``isolated``: the isolated run (attention captured). ``visible``: a free visible run (its own sets).
    ``replay``: the isolated run's sets replayed in visible mode (attention captured), so ``isolated`` and
    ``replay`` hold the same tokens in the same slots and differ only by the mask. ``slot_tokens``: the text
    of every slot of ``isolated``, prompt first.
    """

    threshold: float
    isolated: ParallelResult
    visible: ParallelResult
    replay: ParallelResult
    slot_tokens: list[str]

    def run(self, mode: str) -> ParallelResult:
        """The captured run of ``mode`` on the shared layout: ``isolated`` or ``visible`` (the replay)."""
        checks.choice("mode", mode, masks.INTRASET_MODES)
        return self.isolated if mode == "isolated" else self.replay


def parallel_pairs(
    lm: LoadedModel,
    prompt: str,
    thresholds: Sequence[float],
    *,
    max_steps: int = 15,
    max_set_size: int = 5,
) -> dict[float, ModePair]:
    """Run TEMPO generation in both modes at each threshold (see :class:`ModePair`); keys are the thresholds.

    Cost per threshold: three runs of at most ``max_steps`` cached steps each (isolated and the replay capture
    attention of every layer).
    """
    thresholds = [checks.probability(f"thresholds[{i}]", t) for i, t in enumerate(checks.as_list(thresholds))]
    if not thresholds:
        raise ValueError("give at least one threshold")
    gen = ParallelTokenGenerator(lm)
    common = {"max_steps": max_steps, "max_set_size": max_set_size, "progress": False}
    out: dict[float, ModePair] = {}
    for th in thresholds:
        iso = gen.generate(prompt, threshold=th, intraset="isolated", capture=True, **common)
        vis = gen.generate(prompt, threshold=th, intraset="visible", **common)
        sets = [s.token_ids for s in iso.steps if s.fed]
        replay = gen.generate(prompt, intraset="visible", forced_sets=sets, capture=True, progress=False)
        tokens = [lm.token_str(i) for i in iso.input_ids[0].tolist()]
        out[float(th)] = ModePair(float(th), iso, vis, replay, tokens)
    return out


def mode_sets_table(pair: ModePair) -> pd.DataFrame:
    """The sets chosen by the free runs of both modes, step by step, and whether they are the same."""
    rows = []
    n = max(len(pair.isolated.steps), len(pair.visible.steps))
    for k in range(n):
        a = pair.isolated.steps[k] if k < len(pair.isolated.steps) else None
        b = pair.visible.steps[k] if k < len(pair.visible.steps) else None
        rows.append(
            {
                "step": k,
                "position": (a or b).position,
                "isolated": "/".join(repr(t) for t in a.tokens) if a else "",
                "visible": "/".join(repr(t) for t in b.tokens) if b else "",
                "same set": bool(a and b and sorted(a.token_ids) == sorted(b.token_ids)),
                "same order": bool(a and b and a.token_ids == b.token_ids),
            }
        )
    return pd.DataFrame(rows)


def mode_texts_table(pairs: Mapping[float, ModePair]) -> pd.DataFrame:
    """Per threshold: the text of the free isolated and visible runs, whether they are identical, and the
    first step whose sets differ (``<NA>`` when none does)."""
    rows = []
    for th, pair in pairs.items():
        differ = first_difference(pair.isolated, pair.visible, ordered=False)
        rows.append(
            {
                "threshold": th,
                "isolated": pair.isolated.text,
                "visible": pair.visible.text,
                "identical": pair.isolated.text == pair.visible.text,
                "first differing step": None if differ < 0 else differ,
            }
        )
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def mode_mass_table(pair: ModePair, layer: int | None = None, head: int | None = None) -> pd.DataFrame:
    """:func:`~tempo_lab.summaries.later_mass` of a :class:`ModePair`, in both modes on the shared layout,
    with the relative change isolated vs visible."""
    iso = later_mass(pair.isolated, pair.isolated.attention_map(layer, head))
    vis = later_mass(pair.replay, pair.replay.attention_map(layer, head))
    table = iso.rename(columns={"mass": "isolated"})
    table["visible"] = vis["mass"].to_numpy()
    table["relative change"] = (table["isolated"] - table["visible"]) / table["visible"]
    return table


def mode_maps(iso, vis, tokens: Sequence[str], spans, title: str) -> Figure:
    """Isolated map, visible map (same tokens, same slots) and their difference, side by side."""
    iso, vis = np.asarray(iso, dtype=float), np.asarray(vis, dtype=float)
    fig = plots.figure(16, 6.0)
    axes = fig.subplots(1, 3)
    vmax = max(iso.max(), vis.max(), 1e-9) ** 0.5
    for ax, data, name in ((axes[0], iso, "isolated"), (axes[1], vis, "visible")):
        im = plots.attention_map(ax, np.sqrt(data), tokens, spans, f"{name} (sqrt of attention)", vmax=vmax)
    fig.colorbar(im, ax=list(axes[:2]), shrink=0.7, label="sqrt(attention)")
    diff = iso - vis
    lim = max(abs(diff).max(), 1e-9)
    im = plots.attention_map(
        axes[2], diff, tokens, spans, "isolated - visible", vmin=-lim, vmax=lim, cmap="RdBu_r"
    )
    fig.colorbar(im, ax=axes[2], shrink=0.7, label="attention difference")
    fig.suptitle(title)
    return fig


def mode_mass_bars(table: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Attention of later tokens on each parallel set, isolated vs visible
    (:func:`mode_mass_table`)."""
    fig = plots.figure(9, 3.8) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["isolated"], 0.4, label="isolated", color=MODE_COLOR["isolated"])
    ax.bar(x + 0.2, table["visible"], 0.4, label="visible", color=MODE_COLOR["visible"])
    ax.set_xticks(
        x,
        [f"{s}: {t}" for s, t in zip(table["step"], table["tokens"], strict=True)],
        rotation=60,
        fontsize=7,
        ha="right",
    )
    ax.set_xlabel("parallel set (step: members)")
    ax.set_ylabel("mean attention of later tokens")
    ax.set_title("How much later tokens attend to each parallel set")
    ax.legend(fontsize=8)
    return fig


def view(pairs: Mapping[float, ModePair]) -> View:
    """Notebook 04's replay: one run's attention map, isolated or visible (the isolated run's sets replayed),
    one parallel set highlighted, with the other mode's later attention on it beside."""
    thresholds = sorted(pairs)
    first = pairs[thresholds[0]].isolated
    n_layers, n_heads = len(first.attention.layers), first.attention.passes[0][0].shape[1]
    max_steps = max(len(set_spans(p.isolated)) for p in pairs.values())

    def show(threshold, step, layer, head, mode):
        if threshold not in pairs:
            raise ValueError(f"threshold {threshold} was not run; choose one of {thresholds}")
        pair = pairs[threshold]
        run, other = (pair.isolated, pair.replay) if mode == "isolated" else (pair.replay, pair.isolated)
        return render_run(run, pair.slot_tokens, step, layer, head, other=other,
                                 label=f"threshold {threshold:g}, ")  # fmt: skip

    return View(NAME, show, {
        "threshold": Control(0.1 if 0.1 in pairs else thresholds[0], options=thresholds,
                             description="threshold"),
        "step": Control(min(2, max_steps - 1), 0, max(1, max_steps - 1), 1, description="set (step)"),
        "layer": Control(-1, -1, n_layers - 1, 1, description="layer (-1 = mean)"),
        "head": Control(-1, -1, n_heads - 1, 1, description="head (-1 = mean)"),
        "mode": Control("isolated", options=list(masks.INTRASET_MODES), description="mode"),
    }, title=TITLE)  # fmt: skip
