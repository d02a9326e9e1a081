"""TEMPO sets: every token above a threshold joins the set, and every member is fed at one shared position.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` (a
:class:`~tempo_lab.generators.ParallelResult`). Here:

- :func:`render`: a run's attention map with one parallel set highlighted, and how much later tokens attend
  to it (beside another run on the same slots, when given: notebook 04's isolated/visible replay uses it);
  :func:`explorer` runs TEMPO live (a run when the threshold or mode changes; layer, head and the highlighted
  set only re-render);
- :func:`measure` / :func:`single_rows`: set sizes per threshold over a prompt set; :func:`figure`,
  :func:`study_view`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from tempo_lab import masks, plots
from tempo_lab.generators import ParallelResult, ParallelTokenGenerator
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.studies.batching import tempo_runs
from tempo_lab.studies.claims import Claim, Evidence, ci, fmt_ci
from tempo_lab.studies.conditions import Batch, Conditions
from tempo_lab.studies.plots import CI, n_prompts
from tempo_lab.studies.views import kind_view
from tempo_lab.summaries import mean_or_nan, set_spans
from tempo_lab.views import Control, Rendered, View, live_view

NAME, TITLE = "tempo_sets", "TEMPO sets"
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


# --- over a prompt set ---


def _row(i: int, threshold: float, run: ParallelResult) -> dict:
    sizes = run.set_sizes
    return {"prompt": i, "threshold": threshold, "mean_set_size": mean_or_nan(sizes),
            "max_set_size": max(sizes, default=0),
            "parallel_share": mean_or_nan([s >= 2 for s in sizes])}  # fmt: skip


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x threshold (isolated TEMPO): mean and largest set size, and the share of steps whose set
    has two or more members."""
    plans = [(b, {"threshold": t, "max_steps": cond.tempo_steps}) for b in range(len(batch))
             for t in cond.tempo_thresholds]  # fmt: skip
    runs, _ = tempo_runs(lm, batch, plans)
    return [_row(batch[b][0], opts["threshold"], r) for (b, opts), r in zip(plans, runs, strict=True)]


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` alone, through the TEMPO generator."""
    gen = ParallelTokenGenerator(lm)
    return [_row(i, th, gen.generate(ids, threshold=th, max_steps=cond.tempo_steps, progress=False))
            for th in cond.tempo_thresholds]  # fmt: skip


def figure(table: pd.DataFrame) -> Figure:
    """Mean TEMPO set size against the threshold, per prompt kind."""
    fig = plots.figure(8, 3.6)
    ax = fig.subplots()
    sns.pointplot(table, x="threshold", y="mean_set_size", hue="kind", ax=ax, dodge=0.4, **CI)
    ax.set(xlabel="selection threshold", ylabel="mean set size",
           title=f"TEMPO set sizes over {n_prompts(table)} prompts (95% CI)")  # fmt: skip
    ax.legend(fontsize=7, ncols=3, title="kind")
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


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    tempo = study.table(NAME)
    sizes = {t: ci(tempo[tempo.threshold == t].mean_set_size) for t in sorted(tempo.threshold.unique())}
    share = ci(tempo[tempo.threshold == 0.1].parallel_share) if 0.1 in sizes else None
    return Evidence(
        {"share_at_0.1_lo": share[1] if share else float("nan")},
        f"sizes {single['04']['set_sizes']} at 0.1",
        "mean size " + ", ".join(f"{fmt_ci(*v)} at {t:g}" for t, v in sizes.items())
        + (f"; 2+ members in {fmt_ci(*share)} of steps at 0.1" if share else ""),
    )


def _share_at_tenth(study: Any) -> pd.Series:
    tempo = study.table(NAME)
    return tempo[tempo.threshold == 0.1].set_index("prompt").parallel_share


CLAIMS = (
    Claim(NAME, "every token above the threshold joins the set ({sat, jumped, ran} at 0.1)",
          "3 members at 0.1",
          "confirmed if most steps at 0.1 select 2+ members; refined (the row says how often) if not",
          ("study:tempo_sets.parallel_share (threshold 0.1)", "notebook:04.set_sizes"),
          _claim, lambda v: "confirmed" if v["share_at_0.1_lo"] > 0.5 else "refined",
          ("share of steps with 2+ members at 0.1", _share_at_tenth)),
)  # fmt: skip

PHENOMENON = Phenomenon(NAME, "04", TITLE, measure=measure, single=single_rows, explorer=explorer,
                        claims=CLAIMS)  # fmt: skip

