"""The interactive views of the notebook series, one factory per notebook.

Each factory takes results computed by earlier cells (never the model), so a slider step only re-renders;
the first control of each view is the cheapest one to move. Display them with :func:`tempo_lab.widgets.show`.

Contents: :func:`gap_dropout_view` (01), :func:`decimal_position_view` (02), :func:`retroactive_view` (03),
:func:`parallel_attention_view` (04), :func:`compressed_view` (05), :func:`study_gap_view` and
:func:`study_threshold_view` (06), :func:`pruning_view` (07), :func:`tpi_shift_view` (08).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Rectangle

from tempo_lab import plots
from tempo_lab.generators.retroactive import TOP_KEPT
from tempo_lab.labels import plain, token_label
from tempo_lab.metrics import divergences, set_spans
from tempo_lab.widgets import Control, Rendered, View


def gap_dropout_view(frame) -> View:
    """Notebook 01: prompt mass and top tokens at one (gap, strategy), with one layer highlighted.

    ``frame``: :func:`tempo_lab.probe.gap_probe` output. Controls: ``gap`` (the frame's gaps), ``strategy``,
    ``layer``.
    """
    gaps = plain(list(dict.fromkeys(frame["gap"])))
    strategies = list(dict.fromkeys(frame["strategy"]))
    n_layers = len(frame["layer_mass"].iloc[0])
    rows = {(r.strategy, r.gap): r for r in frame.itertuples(index=False)}

    def render(gap, strategy, layer) -> Rendered:
        if (strategy, gap) not in rows:
            raise ValueError(f"no probe row for strategy {strategy!r} at gap {gap!r}")
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer {layer} is out of range 0..{n_layers - 1}")
        r = rows[(strategy, gap)]
        text = (
            f"{strategy}, gap {gap:g}: prompt mass {r.prompt_mass:.4f} (layer {layer}: "
            f"{float(r.layer_mass[layer]):.4f}); top {r.top1!r} {r.p1:.4f}"
        )
        fig = plots.figure(10, 3.6)
        left, right = fig.subplots(1, 2, width_ratios=[3, 2])
        plots.layer_mass_bars(r.layer_mass, layer, f"{strategy}, gap {gap:g}: prompt mass per layer", left)
        title = f"next token after {r.token!r} at position {r.position:g}"
        plots.top_token_bars(r.top_tokens, r.top_probs, title, right)
        return Rendered(text, fig)

    first_gap = gaps[1] if len(gaps) > 1 else gaps[0]
    return View(
        "gap_dropout",
        render,
        {
            "gap": Control(first_gap, options=gaps, description="gap"),
            "strategy": Control(strategies[0], options=strategies, description="strategy"),
            "layer": Control(0, 0, n_layers - 1, 1, description="layer"),
        },
    )


def decimal_position_view(sweep) -> View:
    """Notebook 02: the top-k tokens with the last token at one position, against its integer neighbours.

    ``sweep``: :meth:`~tempo_lab.generators.retroactive.RetroactivePositionGenerator.sweep` output. Controls:
    ``position`` (the swept positions), ``top_k`` (1..10).
    """
    positions = [float(p) for p in sweep.positions]
    probs = sweep.probs.double()

    def render(position, top_k) -> Rendered:
        i = sweep.index(position)
        ids = sweep.top_ids(top_k, position)
        lo, hi = float(math.floor(position)), float(math.ceil(position))
        p, p_lo, p_hi = probs[i], probs[sweep.index(lo)], probs[sweep.index(hi)]
        tv_lo, tv_hi = (float(divergences(p[None], q)[0][0]) for q in (p_lo, p_hi))
        tokens = [sweep.token_text[t] for t in ids]
        text = (
            f"position {position:g}: top {tokens[0]!r} {float(p[ids[0]]):.4f}; TV to {lo:g} = {tv_lo:.4f}, "
            f"TV to {hi:g} = {tv_hi:.4f}"
        )
        fig, ax = plots.figure_with_axes(8, 3.6)
        x = np.arange(len(ids))
        width = 0.27
        for k, (label, row, color) in enumerate(
            [
                (f"position {lo:g}", p_lo, "#1f77b4"),
                (f"position {position:g}", p, "#d62728"),
                (f"position {hi:g}", p_hi, "#ff7f0e"),
            ]
        ):
            ax.bar(x + (k - 1) * width, [float(row[t]) for t in ids], width, label=label, color=color)
        ax.set_xticks(x, [token_label(t) for t in tokens])
        ax.set_xlabel("next token (top-k at the chosen position)")
        ax.set_ylabel("probability")
        ax.set_title(f"{sweep.token!r} at position {position:g} vs its integer neighbours")
        ax.legend(fontsize=8)
        return Rendered(text, fig)

    natural = float(sweep.prefix_len)
    first = min(positions, key=lambda q: (abs(q - (natural + 0.5)), q))
    return View(
        "decimal_position",
        render,
        {
            "position": Control(first, options=positions, description="position"),
            "top_k": Control(5, 1, TOP_KEPT, 1, description="top-k"),
        },
    )


def retroactive_view(table) -> View:
    """Notebook 03: one token's probability over a range of gaps.

    ``table``: :func:`tempo_lab.tables.retro_heat_table` (rows = tokens, columns = gaps). Controls:
    ``max_gap`` (the gap range shown is ``0..max_gap``), ``token`` (a row of the table).
    """
    gaps = plain(list(table.columns))
    tokens = list(table.index)
    top1_ids = table.attrs.get("top1_ids", [])
    row_ids = dict(zip(tokens, table.attrs.get("token_ids", []), strict=False))

    def render(max_gap, token) -> Rendered:
        if token not in table.index:
            raise ValueError(f"token {token} is not tracked; choose one of {tokens}")
        cols = [g for g in gaps if g <= max_gap]
        if not cols:
            raise ValueError(f"no explored gap is <= {max_gap}")
        row = table.loc[token, cols]
        best = max(cols, key=lambda g: (float(row[g]), -g))
        leads = [g for g, t in zip(gaps, top1_ids, strict=False) if g <= max_gap and t == row_ids.get(token)]
        text = (
            f"{token} over gaps {cols[0]:g}..{cols[-1]:g}: p at gap {cols[0]:g} = {float(row[cols[0]]):.4f}, "
            f"highest {float(row[best]):.4f} at gap {best:g}; "
            f"top prediction at {len(leads)} of {len(cols)} gaps"
        )
        fig, ax = plots.figure_with_axes(8, 3.6)
        plots.token_curve(table, token, max_gap, ax)
        placed = table.attrs.get("token", "")
        ax.set_title(f"p({token}) after {placed!r} placed at gaps {cols[0]:g}..{cols[-1]:g}")
        return Rendered(text, fig)

    step = gaps[1] - gaps[0] if len(gaps) > 1 else 1
    step = int(step) if float(step).is_integer() else float(step)
    return View(
        "retroactive",
        render,
        {
            "max_gap": Control(gaps[-1], gaps[0], gaps[-1], step, description="max gap"),
            "token": Control(tokens[0], options=tokens, description="token"),
        },
    )


def parallel_attention_view(pairs) -> View:
    """Notebook 04: the attention map of one TEMPO run, isolated or visible, one parallel set highlighted.

    ``pairs``: :func:`tempo_lab.experiments.parallel_pairs` output (threshold → ModePair). Controls:
    ``threshold``, ``step`` (the highlighted set; clamped to the run's last fed set), ``layer`` and ``head``
    (``-1`` = the mean over all), ``mode`` (``isolated``, or ``visible`` = the isolated run's sets replayed
    in visible mode).
    """
    thresholds = sorted(pairs)
    first = pairs[thresholds[0]].isolated
    n_layers = len(first.attention.layers)
    n_heads = first.attention.passes[0][0].shape[1]
    max_steps = max(len(set_spans(p.isolated)) for p in pairs.values())

    def render(threshold, step, layer, head, mode) -> Rendered:
        if threshold not in pairs:
            raise ValueError(f"threshold {threshold} was not run; choose one of {thresholds}")
        if not -1 <= layer < n_layers or not -1 <= head < n_heads:
            raise ValueError(f"layer must be in -1..{n_layers - 1} and head in -1..{n_heads - 1}")
        pair = pairs[threshold]
        run, other = (pair.isolated, pair.replay) if mode == "isolated" else (pair.replay, pair.isolated)
        lh = (None if layer < 0 else layer, None if head < 0 else head)
        attention = run.attention_map(*lh)
        spans = set_spans(run)
        k, a, b = spans[min(step, len(spans) - 1)]
        n = attention.shape[0]
        members = "/".join(repr(t) for t in run.steps[k].tokens)
        where = f"layer {layer if layer >= 0 else 'mean'}, head {head if head >= 0 else 'mean'}"
        if b < n:
            mass = float(attention[b:, a:b].sum(-1).mean())
            twin = float(other.attention_map(*lh)[b:, a:b].sum(-1).mean())
            said = f"later tokens' attention on it {mass:.4f} (other mode {twin:.4f})"
        else:
            said = "no later tokens"
        text = (
            f"threshold {threshold:g}, {mode}, {where}: set {k} [{members}] "
            f"at position {run.steps[k].position:g}; "
            f"{said}"
        )
        fig, ax = plots.figure_with_axes(7.5, 6.6)
        im = plots.attention_map(
            ax,
            attention.sqrt(),
            pair.slot_tokens,
            spans,
            f"{mode}, threshold {threshold:g}, {where} (sqrt of attention)",
        )
        ax.add_patch(Rectangle((a - 0.5, a - 0.5), b - a, n - a, fill=False, edgecolor="#ff3030", lw=1.8))
        fig.colorbar(im, ax=ax, shrink=0.7, label="sqrt(attention)")
        return Rendered(text, fig)

    default = 0.1 if 0.1 in pairs else thresholds[0]
    return View(
        "parallel_attention",
        render,
        {
            "threshold": Control(default, options=thresholds, description="threshold"),
            "step": Control(min(2, max_steps - 1), 0, max(1, max_steps - 1), 1, description="set (step)"),
            "layer": Control(-1, -1, n_layers - 1, 1, description="layer (-1 = mean)"),
            "head": Control(-1, -1, n_heads - 1, 1, description="head (-1 = mean)"),
            "mode": Control("isolated", options=["isolated", "visible"], description="mode"),
        },
    )


def compressed_view(runs) -> View:
    """Notebook 05: the paths at one gap, with a candidate threshold and a path length.

    ``runs``: :func:`tempo_lab.experiments.compressed_runs` output (gap → greedy CompressedResult, run with
    the lowest threshold and the longest path length); higher thresholds and shorter lengths are read off it
    (:meth:`~tempo_lab.generators.compressed.CompressedResult.paths_within`). Controls: ``gap``,
    ``threshold``, ``path_length``.
    """
    gaps = plain(list(runs))
    longest = max(len(p.token_ids) for r in runs.values() for p in r.paths) - 1
    lowest = min(r.threshold for r in runs.values())
    options = sorted({round(lowest, 4), *[t for t in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5) if t > lowest]})

    def render(gap, threshold, path_length) -> Rendered:
        if gap not in runs:
            raise ValueError(f"gap {gap} was not run; choose one of {gaps}")
        res = runs[gap]
        paths = res.paths_within(threshold, path_length)
        best = paths[0]
        text = (
            f"gap {gap:g}, threshold {threshold:g}, {path_length} tokens: {len(paths)} paths; "
            f"{best.candidate.token!r} {best.candidate.prob:.4f} -> {best.text!r}"
        )
        fig = plots.thought_paths(paths, f"{res.prompt!r}: gap {gap:g}, threshold {threshold:g}")
        return Rendered(text, fig)

    return View(
        "compressed",
        render,
        {
            "gap": Control(gaps[1] if len(gaps) > 1 else gaps[0], options=gaps, description="gap"),
            "threshold": Control(options[0], options=options, description="threshold"),
            "path_length": Control(longest, 1, max(1, longest), 1, description="path length"),
        },
    )


def pruning_view(runs) -> View:
    """Notebook 07: a pruned run at one pruning threshold, mask-only or recomputed.

    ``runs``: :func:`tempo_lab.experiments.pruning_runs` output (threshold -> (mask-only, recompute)).
    Controls: ``threshold`` (the pruning thresholds run), ``run`` (``mask-only`` or ``recompute``).
    """
    thresholds = sorted(runs)

    def render(threshold, run) -> Rendered:
        if threshold not in runs:
            raise ValueError(f"pruning threshold {threshold} was not run; choose one of {thresholds}")
        result = runs[threshold][0 if run == "mask-only" else 1]
        pruned = sum(sum(s.pruned) for s in result.steps if s.pruned)
        text = f"pruning threshold {threshold:g}, {run}: {pruned} member(s) pruned; {result.pruned_text!r}"
        fig = plots.pruning_shares(
            result, threshold, f"{run}, pruning threshold {threshold:g}: {result.text!r}"[:120]
        )
        return Rendered(text, fig)

    return View(
        "pruning",
        render,
        {
            "threshold": Control(
                thresholds[len(thresholds) // 2], options=thresholds, description="prune below"
            ),
            "run": Control("mask-only", options=["mask-only", "recompute"], description="run"),
        },
    )


def _kind_rows(table, kind: str, kinds: list[str]):
    if kind != "all" and kind not in kinds:
        raise ValueError(f"prompt kind {kind!r} is not in the study; choose 'all' or one of {kinds}")
    return table if kind == "all" else table[table.kind == kind]


def _histogram(values, title: str, xlabel: str) -> tuple[str, object]:
    """A histogram of per-prompt values with its mean and 95% interval, and the interval as text."""
    from tempo_lab.studies.claims import fmt_ci
    from tempo_lab.studies.stats import bootstrap_ci

    ci = bootstrap_ci(values)
    fig, ax = plots.figure_with_axes(7, 3.2)
    ax.hist(np.asarray(values, dtype=float), bins=20, color="#4c72b0")
    ax.axvline(ci[0], color="#c44e52", lw=2, label=f"mean {fmt_ci(*ci)}")
    ax.axvspan(ci[1], ci[2], color="#c44e52", alpha=0.2)
    ax.set(xlabel=xlabel, ylabel="prompts", title=title)
    ax.legend(fontsize=8)
    return fmt_ci(*ci), fig


def study_gap_view(study) -> View:
    """Notebook 06: the retroactive re-placement over the stored study, per prompt kind and gap.

    Controls: ``kind`` (``"all"`` or one kind of the prompt set), ``gap`` (a gap of the study).
    """
    table = study.table("retroactive")
    kinds = sorted(set(table.kind))
    gaps = plain(sorted(table.gap.unique()))

    def render(kind, gap) -> Rendered:
        rows = _kind_rows(table, kind, kinds)
        rows = rows[rows.gap == gap]
        if rows.empty:
            raise ValueError(f"gap {gap} was not run; choose one of {gaps}")
        ci, fig = _histogram(rows.tv, f"{kind} prompts, greedy token re-placed at +{gap:g}", "TV vs gap 0")
        kept = rows.top1_same.mean()
        text = f"{kind}, gap +{gap:g}: TV {ci} over {len(rows)} prompts; top-1 kept in {kept:.1%}"
        return Rendered(text, fig)

    return View("study-gap", render, {
        "kind": Control("all", options=["all", *kinds], description="prompt kind"),
        "gap": Control(gaps[-1], options=gaps, description="gap"),
    })  # fmt: skip


def study_threshold_view(study) -> View:
    """Notebook 06: TEMPO set sizes over the stored study, per prompt kind and threshold.

    Controls: ``kind`` (``"all"`` or one kind), ``threshold`` (a threshold of the study).
    """
    table = study.table("tempo")
    kinds = sorted(set(table.kind))
    thresholds = plain(sorted(table.threshold.unique()))

    def render(kind, threshold) -> Rendered:
        rows = _kind_rows(table, kind, kinds)
        rows = rows[rows.threshold == threshold].dropna(subset=["mean_set_size"])
        if rows.empty:
            raise ValueError(f"threshold {threshold} was not run; choose one of {thresholds}")
        ci, fig = _histogram(rows.mean_set_size, f"{kind} prompts, TEMPO at threshold {threshold:g}",
                             "mean set size of a run")  # fmt: skip
        share = rows.parallel_share.mean()
        text = f"{kind}, threshold {threshold:g}: mean set size {ci}; 2+ members in {share:.1%} of steps"
        return Rendered(text, fig)

    return View("study-threshold", render, {
        "kind": Control("all", options=["all", *kinds], description="prompt kind"),
        "threshold": Control(thresholds[len(thresholds) // 2], options=thresholds, description="threshold"),
    })  # fmt: skip


def tpi_shift_view(models, text: str) -> View:
    """Notebook 08: the next byte after ``text`` when everything from byte ``at`` on is moved by ``amount``:
    positions for the RoPE baseline, radians of phase for a TPI model. ``models``: name -> trained model.

    Controls: ``model`` (a name), ``amount`` (0..8), ``at`` (the first moved byte).
    """
    import torch

    from tempo_lab.tpi.probes import shifted_distribution

    names = list(models)
    ids = torch.tensor([list(text.encode("utf-8"))])

    def render(model, amount, at) -> Rendered:
        if model not in models:
            raise ValueError(f"no model {model!r}; choose one of {names}")
        base = shifted_distribution(models[model], ids, at, 0.0)
        moved = shifted_distribution(models[model], ids, at, amount)
        tv = 0.5 * float((moved - base).abs().sum())
        top = moved.topk(8)
        labels = [token_label(bytes([int(i)]).decode("latin-1")) for i in top.indices]
        fig, ax = plots.figure_with_axes(7, 3.2)
        plots.top_token_bars(labels, top.values.tolist(), "", ax)
        unit = "positions" if not models[model].config.is_tpi else "radians"
        ax.set_title(f"{model}: next byte after {text[-24:]!r}, bytes {at}.. moved by {amount:g} {unit}")
        return Rendered(f"{model}, move {amount:g} {unit} from byte {at}: TV {tv:.4f} against no move", fig)

    return View("tpi-shift", render, {
        "model": Control(names[0], options=names, description="model"),
        "amount": Control(1.0, 0.0, 8.0, 0.25, description="move by"),
        "at": Control(len(ids[0]) // 2, 1, len(ids[0]) - 1, 1, description="from byte"),
    })  # fmt: skip
