"""Notebook 10 (b)'s figures, drawn from a :class:`~tempo_lab.long_context.study.LongContextStudy`: passkey
accuracy by distance (the gap version at D: the positions of a D-token sample, a few hundred tokens) and by
length (RULER's real D-token samples), and the long text's loss by position, for every method the study
holds. Numeric axes (distances and positions in tokens), lines only between measured points,
each accuracy with its Wilson 95% interval and its number of samples, colours from seaborn's colour-blind
palette; and the differences each rule of LC1-LC7 reads, with their intervals against the rule's margin.

Contents: :func:`passkey_figure`, :func:`loss_figure`, :func:`differences_figure`, :func:`passkey_view`,
:data:`COLOURS`, :data:`DODGE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from tempo_lab import plots
from tempo_lab.extension.methods import LABELS, METHODS, Method
from tempo_lab.loaded import LoadedModel
from tempo_lab.long_context.passkey import Positions, Tokens, answer
from tempo_lab.long_context.ruler import Sample
from tempo_lab.long_context.rules import DELTA, EPSILON
from tempo_lab.stats import wilson
from tempo_lab.views import Control, Rendered, View, live_view

_PALETTE = plots.PALETTE
#: one colour per method (and per model for the distance curves), distinguishable for colour-blind readers
COLOURS = {"plain": _PALETTE[7], "pi": _PALETTE[0], "ntk": _PALETTE[2], "dynamic": _PALETTE[4],
           "yarn": _PALETTE[1], "self_extend": _PALETTE[3],
           "smollm2-135m": _PALETTE[0], "gemma3-270m": _PALETTE[1]}  # fmt: skip
#: a verdict's colour in the differences figure
VERDICT_COLOURS = {"confirmed": plots.GREEN, "refined": plots.BLUE, "refuted": plots.RED,
                   "undecided": plots.GREY}  # fmt: skip
#: how far apart (in octaves) the methods' points at one length are drawn, so none hides another
DODGE = 0.07
MARKERS = {"plain": "o", "pi": "s", "ntk": "^", "dynamic": "v", "yarn": "D", "self_extend": "P"}


def _accuracy(part: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: samples, accuracy and its Wilson 95% interval."""
    rows = []
    for x, cell in part.groupby(by):
        k, n = int(cell.score.sum()), len(cell)
        _, lo, hi = wilson(k, n)
        acc = k / n  # the interval is Wilson's; the point is the observed share (clipped into it)
        rows.append({by: x, "n": n, "acc": acc, "lo": min(lo, acc), "hi": max(hi, acc)})
    return pd.DataFrame(rows)


def _trained_line(ax: Axes, trained: int, label: str, colour) -> None:
    ax.axvline(trained, color=colour, linestyle=":", linewidth=1)
    ax.annotate(label, (trained, 0.5), xycoords=("data", "axes fraction"), rotation=90, ha="right",
                va="center", fontsize=8, color=colour)  # fmt: skip


def _tokens_axis(ax: Axes) -> None:
    """A log2 axis of token counts, labelled 2k, 4k, ..."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1024:g}k"))


def _shifts(series: Sequence[Sequence[int]], spacing: float = DODGE) -> list[list[float]]:
    """Per series, per x in it: the factor that draws its point side by side (``spacing`` octaves apart)
    with the other series that have a point at the same x, in the series' order; a point alone stays at its
    x (factor 1)."""
    present: dict[int, list[int]] = {}
    for i, xs in enumerate(series):
        for x in xs:
            present.setdefault(int(x), []).append(i)
    return [[2 ** (spacing * (present[int(x)].index(i) - (len(present[int(x)]) - 1) / 2)) for x in xs]
            for i, xs in enumerate(series)]  # fmt: skip


def _points(
    ax: Axes, acc: pd.DataFrame, x: str, label: str, colour, marker: str, *, shift: Sequence[float],
    counts=True,
) -> None:  # fmt: skip
    """One curve with its intervals, each point drawn at its ``x`` times its ``shift`` (a dodge on the log
    axis, :func:`_shifts`), its number of samples beside it if ``counts``."""
    at = acc[x] * list(shift)
    ax.errorbar(at, acc.acc, yerr=[acc.acc - acc.lo, acc.hi - acc.acc], color=colour, marker=marker,
                capsize=3, label=label)  # fmt: skip
    if counts:
        for r, xy in zip(acc.itertuples(), at, strict=True):
            ax.annotate(f"n={r.n}", (xy, r.acc), textcoords="offset points", xytext=(4, 5), fontsize=8,
                        color=colour)  # fmt: skip


def _in_order(groups) -> list[tuple[str, pd.DataFrame]]:
    """``(method, rows)`` pairs in the order of :data:`~tempo_lab.extension.methods.METHODS` (others last)."""
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(groups, key=lambda pair: order.get(pair[0], len(order)))


def _each_method(ax: Axes, rows: pd.DataFrame, x: str) -> str:
    """Accuracy against ``x`` under each method in ``rows`` (one model, one version), in the order of
    :data:`~tempo_lab.extension.methods.METHODS`, side by side at each ``x`` (:data:`DODGE`) so equal
    accuracies do not hide one another (a point alone at its ``x`` stays there); the rows that stand for a
    method inside the trained context (copied from plain) left out. Where every point at an ``x`` has the
    same number of samples, the numbers are not written beside the points but returned for the title
    (", n=N each", or ", n=N at 4k, M at 8k, ..." on a line of its own); else each point is labelled and ""
    is returned."""
    rows = rows[(rows.method == "plain") | (rows.setting != "as plain")]
    methods = _in_order(rows.groupby("method", sort=False))
    accs = [_accuracy(part, x) for _, part in methods]
    sizes: dict[int, set[int]] = {}
    for acc in accs:
        for at, n in zip(acc[x], acc.n, strict=True):
            sizes.setdefault(int(at), set()).add(int(n))
    counts = any(len(n) > 1 for n in sizes.values())
    for (method, _), acc, shift in zip(methods, accs, _shifts([acc[x] for acc in accs]), strict=True):
        label, marker = LABELS.get(method, method), MARKERS.get(method, "o")
        _points(ax, acc, x, label, COLOURS.get(method), marker, shift=shift, counts=counts)
    if len(rows):
        _trained_line(ax, int(rows.trained.iloc[0]), "trained", COLOURS["plain"])
    _tokens_axis(ax)
    if counts or not sizes:
        return ""
    each = {at: min(n) for at, n in sorted(sizes.items())}
    if len(set(each.values())) == 1:
        return f", n={next(iter(each.values()))} each"
    return "\nn=" + ", ".join(f"{n} at {at / 1024:g}k" for at, n in each.items())


def passkey_figure(passkey: pd.DataFrame) -> Figure:
    """Three panels, each accuracy with its Wilson 95% interval, against D. Left: the plain models on the gap
    version at D (a few hundred tokens at the positions of a D-token sample: the question near D, the needle
    at its depth in D; :mod:`~tempo_lab.long_context.passkey`) beside RULER's real samples of D tokens, so
    the same D has the same positions with and without the haystack's tokens. Middle and right: the study's
    first model under each method, by distance on the gap version and by length on the real samples: the two
    curves of each method. Dotted lines: each model's trained context."""
    if passkey.empty:
        raise ValueError("the study holds no passkey rows yet")
    fig = plots.figure(15, 4.4)
    left, middle, right = fig.subplots(1, 3, sharey=True)
    plain = passkey[passkey.method == "plain"]
    for model, part in plain.groupby("model", sort=False):
        colour = COLOURS.get(model)
        gap = _accuracy(part[part.version == "gap"], "length")
        real = _accuracy(part[part.version == "real"], "length")
        # at a D with both, the gap point left of D and the real one right of it, DODGE octaves each way
        gap_shift, real_shift = _shifts([gap.get("length", []), real.get("length", [])], 2 * DODGE)
        if len(gap):
            label = f"{model}, gap version (D's positions)"
            _points(left, gap, "length", label, colour, "o", shift=gap_shift)
        if len(real):
            at = real.length * real_shift
            left.errorbar(at, real.acc, yerr=[real.acc - real.lo, real.hi - real.acc], color=colour,
                          marker="s", linestyle="none", capsize=3, mfc="white",
                          label=f"{model}, real (RULER's D tokens)")  # fmt: skip
        _trained_line(left, int(part.trained.iloc[0]), f"{model} trained", colour)
    _tokens_axis(left)
    left.set_xlabel("D: a sample's length, or the positions it spans")
    left.set_ylabel("passkey accuracy (RULER's score)")
    left.set_title("The plain models, by distance and by length")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1)
    real = passkey[passkey.version == "real"]
    model = real.model.iloc[0] if len(real) else passkey.model.iloc[0]  # the study's first model has them
    ours = passkey[passkey.model == model]
    each = _each_method(middle, ours[ours.version == "gap"], "length")
    middle.set_xlabel("D: the positions of a D-token sample")
    middle.set_title(f"By distance: {model}, gap version{each}")
    each = _each_method(right, ours[ours.version == "real"], "length")
    right.set_xlabel("D: the sample's length (tokens)")
    right.set_title(f"By length: {model}, real{each}")
    if len(ours):
        plots.legend_outside(right)
    right.set_ylim(-0.05, 1.1)
    return fig


def loss_figure(loss: pd.DataFrame, bucket: int = 1024) -> Figure:
    """The long text's loss (nats per token) by position, in buckets of ``bucket`` positions, per method: the
    mean over the windows (a line through the buckets' centres, each a measured mean); dotted: the trained
    context."""
    if loss.empty:
        raise ValueError("the study holds no loss rows yet")
    fig, ax = plots.figure_with_axes(8, 4)
    binned = loss.assign(bucket=loss.bin // bucket * bucket, total=loss.loss * loss.tokens)
    for method, part in _in_order(binned.groupby("method", sort=False)):
        per = part.groupby(["window", "bucket"])[["total", "tokens"]].sum()
        mean = (per.total / per.tokens).groupby("bucket").mean()
        windows = part.window.nunique()
        label = f"{LABELS.get(method, method)} ({windows} windows)"
        ax.plot(mean.index + bucket / 2, mean.values, marker=MARKERS.get(method, "o"), markersize=4,
                color=COLOURS.get(method), label=label)  # fmt: skip
    _trained_line(ax, int(loss.trained.iloc[0]), "trained", COLOURS["plain"])
    ax.set_xlabel("position in the window (tokens)")
    ax.set_ylabel("loss (nats per token)")
    length = int(loss.length.iloc[0])
    ax.set_title(f"{loss.model.iloc[0]}: loss by position on {length}-token windows of one text")
    plots.legend_outside(ax)
    return fig


def differences_figure(study: Any) -> Figure:
    """The differences behind LC1-LC7's verdicts, as their registered rules read them: each statistic with
    its 95% interval (paired where the rule pairs samples or windows) beside the rule's margin (dotted: δ for
    accuracies, ε for the loss), one row per statistic, its claim, its words (the claim's own
    :attr:`~tempo_lab.claims.Evidence.statistics`) and its verdict in the label (a claim with no registered
    rule, LC4.positions: its post-hoc rule's, so marked). A statistic the study has not computed yet is left
    out."""
    from tempo_lab.long_context.evidence import CLAIMS

    rows = []
    for claim in CLAIMS:
        rule = claim.deciding_rule  # LC4.positions: LC4's rule, post hoc
        if rule is None:
            continue
        evidence = claim.measure(study, {})
        values = evidence.values
        verdict = rule(values) + ("" if claim.rule else " (post hoc)")
        for name, words in evidence.statistics.items():
            v, lo, hi = (values.get(k, math.nan) for k in (name, f"{name}_lo", f"{name}_hi"))
            if all(math.isfinite(x) for x in (v, lo, hi)):
                rows.append((claim.key, name, words, v, lo, hi, verdict, claim.key.startswith("LC6")))
    if not rows:
        raise ValueError("the study holds no statistic of the long-context rules yet")
    panels = [(False, DELTA, "accuracy", "Passkey"), (True, EPSILON, "nats", "Loss")]
    panels = [p for p in panels if any(r[-1] == p[0] for r in rows)]
    sizes = [sum(r[-1] == p[0] for r in rows) for p in panels]
    fig = plots.figure(10, 1.2 * len(panels) + 0.38 * len(rows))
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=sizes)[:, 0]
    for ax, (loss, margin, unit, what) in zip(axes, panels, strict=True):
        part = list(reversed([r for r in rows if r[-1] == loss]))
        for y, (_, _, _, v, lo, hi, verdict, _) in enumerate(part):
            ax.errorbar([v], [y], xerr=[[v - lo], [hi - v]], fmt="o", capsize=3,
                        color=VERDICT_COLOURS[verdict.removesuffix(" (post hoc)")])
        ax.set_yticks(range(len(part)), [f"{r[0]} {r[1]} = {r[2]}: {r[6]}" for r in part])
        for x in (-margin, margin):
            ax.axvline(x, color="#999999", linestyle=":")
        ax.axvline(0, color="#000000", linewidth=0.8)
        ax.set_ylim(-0.6, len(part) - 0.4)
        ax.set_xlabel(f"difference ({unit}); dotted: the margin ±{margin:g}")
        ax.set_ylabel("claim, statistic: verdict")
        ax.set_title(f"{what}: each statistic's 95% interval against the rule's margin")
    fig.suptitle("The differences behind the long-context verdicts")
    return fig


def passkey_view(lm: LoadedModel, samples: list[Sample]) -> View:
    """Notebook 10 (b)'s live control: one of ``samples`` (RULER's, see
    :func:`~tempo_lab.long_context.ruler.ruler_samples`) re-scored on every move, in its gap version at a
    chosen D (the positions of a D-token sample; the title gives the needle's distance from the question)
    under a chosen method set for D: the greedy answer, RULER's score and the value's log-probability,
    beside the plain model's."""
    if not samples:
        raise ValueError("give at least one RULER sample to re-score")
    tokens = [Tokens.of(lm, s) for s in samples]

    def score(name: str, t: Tokens, version: Positions, distance: int):
        method = Method.for_length(lm, name, distance)
        with method.applied(lm):
            return answer(lm, version, t, max_new=12), method

    def update(values, progress) -> Rendered:
        i, name, distance = int(values["sample"]), values["method"], int(values["distance"])
        t = tokens[i]
        version = t.gap(distance)  # one gap version for both methods
        found, method = score(name, t, version, distance)
        plain, _ = score("plain", t, version, distance)
        fig, (ax,) = plots.live_figure(6, 2.6)
        ax.bar(["plain", LABELS[name]], [plain.logprob, found.logprob],
               color=[COLOURS["plain"], COLOURS.get(name)])  # fmt: skip
        ax.set_ylabel("log p(value), nats")
        apart = version.distance  # the needle's distance from the question at D's positions
        ax.set_title(f"sample {t.sample.index} at a {distance}-token sample's positions: the needle "
                     f"{apart:g} positions before the question")  # fmt: skip
        text = (f"{LABELS[name]} ({method.setting or 'as set'}): {found.text!r}, score {found.score:g}, "
                f"log p(value) {found.logprob:.3f}; plain: {plain.text!r}, {plain.score:g}, "
                f"{plain.logprob:.3f}")  # fmt: skip
        state = {"score": found.score, "logprob": round(found.logprob, 4), "plain": round(plain.logprob, 4),
                 "distance": float(apart)}  # fmt: skip
        return Rendered(text, fig, state)

    return live_view("passkey", "Passkey by distance", {
        "sample": Control(0, 0, len(samples) - 1, 1, description="sample"),
        "method": Control("yarn", options=list(METHODS), description="method"),
        "distance": Control(16384, 2048, 65536, 2048, description="distance"),
    }, update)  # fmt: skip
