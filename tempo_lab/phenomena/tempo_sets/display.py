"""TEMPO sets' figures and views: a run's attention map with one parallel set highlighted and how much
later tokens attend to it (beside another run on the same slots, when given: notebook 04's isolated/visible
replay uses it); the live explorer runs TEMPO (a run when the threshold or mode changes; layer, head and the
highlighted set only re-render); the study's figure and replay.

Contents: :func:`render`, :func:`explorer`, :func:`figure`, :func:`study_view`, :data:`LIVE_STEPS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tempo_lab import masks, plots
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena.tempo_sets.study import NAME, TITLE
from tempo_lab.plots import CI, n_prompts
from tempo_lab.summaries import set_spans
from tempo_lab.views import Control, Rendered, View, live_view
from tempo_lab.views.kinds import kind_view

LIVE_STEPS = 10


def render(
    run: ParallelResult,
    slot_tokens: Sequence[str],
    set_index: int,
    layer: int,
    head: int,
    *,
    other: ParallelResult | None = None,
    label: str = "",
) -> Rendered:
    """``run``'s attention map (``layer`` / ``head``, ``-1`` = the mean over all) with its parallel set
    ``set_index`` highlighted (a set past the last is the last); ``other``: a run on the same slots whose
    later attention on that set is reported beside (the other intra-set mode); ``label`` opens the
    sentence."""
    n_layers, n_heads = len(run.attention.layers), run.attention.passes[0][0].shape[1]
    if not -1 <= layer < n_layers or not -1 <= head < n_heads:
        raise ValueError(f"layer must be in -1..{n_layers - 1} and head in -1..{n_heads - 1}")
    lh = (None if layer < 0 else layer, None if head < 0 else head)
    attention = run.attention_map(*lh)
    spans = set_spans(run)
    k, a, b = spans[min(set_index, len(spans) - 1)]
    n = attention.shape[0]
    members = "/".join(repr(t) for t in run.steps[k].tokens)
    where = f"layer {layer if layer >= 0 else 'mean'}, head {head if head >= 0 else 'mean'}"
    mass = float(attention[b:, a:b].sum(-1).mean()) if b < n else None
    if mass is None:
        said = "no later tokens"
    else:
        said = f"later tokens' attention on it {mass:.4f}"
        if other is not None:
            said += f" (other mode {float(other.attention_map(*lh)[b:, a:b].sum(-1).mean()):.4f})"
    text = f"{label}{run.mode}, {where}: set {k} [{members}] at position {run.steps[k].position:g}; {said}"
    fig, (ax,) = plots.live_figure(7.5, 6.6)
    fig.subplots_adjust(left=0.22, bottom=0.22)
    title = f"{label}{run.mode}, {where} (sqrt of attention)"
    im = plots.attention_map(ax, attention.sqrt(), slot_tokens, spans, title)
    plots.highlight_set(ax, a, b, n)
    fig.colorbar(im, ax=ax, shrink=0.7, label="sqrt(attention)")
    state = {"run_text": run.text, "sets": [s.tokens for s in run.steps], "highlighted": k,
             "later_mass": None if mass is None else round(mass, 6)}  # fmt: skip
    return Rendered(text, fig, state)


def explorer(session: LiveSession) -> View:
    """Live TEMPO: the sets a threshold selects, isolated or visible, and where later tokens look."""
    lm = session.lm
    gen = ParallelTokenGenerator(lm)  # one core for every run
    held: dict[tuple, ParallelResult] = {}
    config = lm.model.config
    controls = {
        "prompt": Control("The cat sat on the", kind="text", description="prompt"),
        "threshold": Control(0.1, 0.02, 0.5, 0.01, description="threshold"),
        "mode": Control("isolated", options=list(masks.INTRASET_MODES), kind="toggle", description="sets"),
        "layer": Control(-1, -1, config.num_hidden_layers - 1, 1, description="layer (-1 = mean)"),
        "head": Control(-1, -1, config.num_attention_heads - 1, 1, description="head (-1 = mean)"),
        "set": Control(0, 0, LIVE_STEPS - 1, 1, description="highlighted set"),
    }

    def update(values, progress) -> Rendered:
        session.use_prompt(values["prompt"])  # validates the prompt the way every explorer does
        key = (values["prompt"], float(values["threshold"]), values["mode"])
        if key not in held:
            run = gen.generate(values["prompt"], threshold=key[1], max_steps=LIVE_STEPS, intraset=key[2],
                               capture=True, progress=False, on_step=progress)  # fmt: skip
            held.clear()
            held[key] = run
        run = held[key]
        tokens = [lm.token_str(i) for i in run.input_ids[0].tolist()]
        label = f"threshold {key[1]:g}, "
        return render(run, tokens, int(values["set"]), int(values["layer"]), int(values["head"]), label=label)

    return live_view(NAME, TITLE, controls, update, note=session.note)


def figure(table: pd.DataFrame) -> Figure:
    """Mean TEMPO set size against the threshold, per prompt kind."""
    fig = plots.figure(8, 3.6)
    ax = fig.subplots()
    sns.pointplot(table, x="threshold", y="mean_set_size", hue="kind", ax=ax, dodge=0.15, native_scale=True,
                  **CI)
    ax.set(xlabel="selection threshold", ylabel="mean set size",
           title=f"TEMPO set sizes over {n_prompts(table)} prompts (95% CI)")  # fmt: skip
    plots.legend_outside(ax, title="prompt kind")
    return fig


def study_view(study: Any) -> View:
    """Notebook 06's replay over the stored study: TEMPO set sizes at one threshold, per prompt kind."""

    def say(kind, threshold, rows, interval):
        share = rows.parallel_share.mean()
        text = (
            f"{kind}, threshold {threshold:g}: mean set size {interval}; 2+ members in {share:.1%} of steps"
        )
        return text, {"parallel_share": round(float(share), 6)}

    def label(kind, threshold):
        return f"{kind} prompts, TEMPO at threshold {threshold:g}", "mean set size of a run"

    table = study.table(NAME)
    middle = len(table.threshold.unique()) // 2
    return kind_view(NAME, TITLE, table, "threshold", "mean_set_size", label, say, default=middle)
