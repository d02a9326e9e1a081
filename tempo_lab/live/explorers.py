"""Model-backed explorers, one per phenomenon: every update runs the model on the values the controls hold.

An explorer is its controls (:class:`~tempo_lab.widgets.Control`, with ``kind`` ``"text"``, ``"toggle"`` or a
slider) and ``update(values) -> LiveView``: a sentence for people, a figure, and ``state``, the numbers shown,
machine-readable (tests and browser tests read those, never the sentence). ``render`` is ``update`` with
tempo_lab's ``ValueError`` turned into a view that shows the message, so a bad input never breaks the view.

Costs on a move, with the prompt's prefix cache held by a :class:`~tempo_lab.live.session.LiveSession`:

- :class:`PositionExplorer` (a token's position, a float): one cached step of two branches (the position and
  gap 0); when the prompt, token or gap range changes, the curve's gaps join that same step as more branches;
- :class:`GapExplorer` (the gap dropout): ``additive_4d`` is one cached step with attention captured; the
  other strategies are defined by their own uncached (or fresh-cache) call, so they run it: one full pass;
- :class:`CompressedExplorer`: ``path_length`` batched cached steps off the held prefix (no prefill);
- :class:`ParallelExplorer` (TEMPO): a full run of ``max_steps`` sets when the threshold or mode changes
  (reported step by step through ``progress``); layer, head and highlighted set only re-render.

Contents: :class:`LiveView`, :class:`Explorer`, the four explorers, :data:`EXPLORERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tempo_lab import plots, positions
from tempo_lab.capture import capture_attention, span_mass
from tempo_lab.generators import CompressedThoughtGenerator, ParallelTokenGenerator
from tempo_lab.labels import token_label
from tempo_lab.live.session import LiveSession
from tempo_lab.metrics import divergences, later_mass, set_spans
from tempo_lab.probe import STRATEGIES, strategy_forward
from tempo_lab.widgets import Control

TOP_K = 5
Progress = Callable[[int, int], None]


@dataclass
class LiveView:
    """What an explorer shows: ``text`` (a sentence), ``figure`` (or ``None``), ``state`` (JSON-ready)."""

    text: str
    figure: Figure | None = None
    state: dict[str, Any] = field(default_factory=dict)


class Explorer:
    """Base: a name, a title, controls, and the model session the updates run on."""

    name = ""
    title = ""

    def __init__(self, session: LiveSession):
        self.session = session
        self.lm = session.lm

    def controls(self) -> dict[str, Control]:
        raise NotImplementedError

    def defaults(self) -> dict[str, Any]:
        return {k: c.value for k, c in self.controls().items()}

    def update(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        raise NotImplementedError

    def render(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        """:meth:`update`, with bad input shown as its message (state ``{"error": message}``)."""
        try:
            return self.update({**self.defaults(), **values}, progress)
        except ValueError as exc:
            return LiveView(f"⚠ {exc}", None, {"explorer": self.name, "error": str(exc)})

    def _top(self, probs: torch.Tensor, k: int = TOP_K) -> list[list]:
        """``[[token text, probability], …]`` of the ``k`` most probable tokens of ``probs`` ``(vocab,)``."""
        p, i = probs.topk(k)
        return [[self.lm.token_str(int(t)), round(float(v), 6)] for t, v in zip(i, p, strict=True)]


def _sentence(top: list[list]) -> str:
    return ", ".join(f"{token_label(t)} {p:.4f}" for t, p in top)


class PositionExplorer(Explorer):
    """A token placed after the prompt at any (fractional) position: its next-token distribution."""

    name, title = "position", "Positions"

    def __init__(self, session: LiveSession):
        super().__init__(session)
        self._curve: tuple[tuple, torch.Tensor, list[float]] | None = None

    def controls(self) -> dict[str, Control]:
        return {
            "prompt": Control("Once upon a time", kind="text", description="prompt"),
            "token": Control(",", kind="text", description="token (one token; empty = greedy next)"),
            "gap": Control(0.5, 0.0, 100.0, 0.1, description="position after the prompt (gap)"),
            "gap_range": Control(20, 1, 100, 1, description="curve over gaps 0 to"),
        }

    def update(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        s = self.session
        s.use_prompt(values["prompt"])
        t, token_id = s.prompt_len, s.token_id(values["token"])
        position = t + float(values["gap"])
        # one cached step: the chosen position, gap 0, and (only when its inputs changed) the curve's gaps
        key = (s.prompt, token_id, int(values["gap_range"]), s.prefills)
        grid = (
            positions.grid(0, key[2], max(0.5, key[2] / 40))
            if self._curve is None or self._curve[0] != key
            else []
        )
        probs = s.place(token_id, [position, float(t), *(t + g for g in grid)])  # (2 + G, vocab)
        if grid:
            self._curve = (key, probs[2:], grid)
        _, curve, gaps = self._curve
        tv = float(divergences(probs[:1], probs[1])[0][0])
        top = self._top(probs[0])
        state = {
            "explorer": self.name,
            "prompt_len": t,
            "token": self.lm.token_str(token_id),
            "position": position,
            "gap": float(values["gap"]),
            "top": top,
            "tv_from_gap0": round(tv, 6),
            "prefills": s.prefills,
        }
        text = (
            f"{token_label(state['token'])} placed at position {position:g} (gap {values['gap']:g} after the "
            f"{t}-token prompt): the model's top next tokens are {_sentence(top)}; total variation from gap "
            f"0 is {tv:.4f}."
        )
        fig, (left, right) = plots.live_figure(11, 3.8, 2)
        ids = probs[0].topk(TOP_K).indices
        plots.paired_bars(
            left,
            [self.lm.token_str(int(i)) for i in ids],
            probs[:2, ids].tolist(),
            [f"position {position:g}", f"gap 0 (position {t})"],
            f"next token after {token_label(state['token'])}",
        )
        for i in ids.tolist():
            right.plot(gaps, curve[:, i], marker=".", ms=3, label=token_label(self.lm.token_str(i)))
        right.axvline(float(values["gap"]), color="k", lw=0.8, ls=":")
        right.set_xlabel("gap (positions after the prompt)")
        right.set_ylabel("probability")
        right.set_title("the same tokens over the gap range")
        right.legend(fontsize=7)
        return LiveView(text, fig, state)


class GapExplorer(Explorer):
    """The gap dropout: how much a token after a gap attends to the prompt, per mask strategy."""

    name, title = "gap", "Gap dropout"

    def controls(self) -> dict[str, Control]:
        return {
            "prompt": Control("Once upon a time,", kind="text", description="prompt"),
            "token": Control(" there", kind="text", description="token after the gap"),
            "strategy": Control("additive_4d", options=list(STRATEGIES), kind="toggle", description="mask"),
            "gap": Control(5, 0, 100, 1, description="gap"),
            "layer": Control(0, 0, self.lm.model.config.num_hidden_layers - 1, 1, description="layer"),
        }

    def update(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        s = self.session
        s.use_prompt(values["prompt"])
        t, token_id = s.prompt_len, s.token_id(values["token"])
        gap, strategy, layer = int(values["gap"]), values["strategy"], int(values["layer"])
        if strategy == "additive_4d":  # tempo_lab's own mask: one cached step on the held prefix
            with capture_attention(self.lm.model) as rec:
                probs = s.place(token_id, [float(t + gap)])[0]
            weights = rec.stacked(width=t + 1)  # (layers, 1, heads, 1, t + 1)
        else:  # the strategy is its own (uncached or fresh-cache) call: run it as it is
            ids = s.prefix.input_ids
            seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], 1)
            run = strategy_forward(self.lm, seq, positions.with_gap(t, 1, gap), strategy)
            probs, weights = torch.softmax(run.logits[0], -1), run.attention.stacked()
        layer_mass = span_mass(weights.float(), slice(0, t))[:, 0].mean(-1)  # (layers,)
        top = self._top(probs)
        state = {
            "explorer": self.name,
            "strategy": strategy,
            "position": t + gap,
            "prompt_mass": round(float(layer_mass.mean()), 6),
            "layer_mass": [round(float(m), 6) for m in layer_mass],
            "top": top,
            "prefills": s.prefills,
        }
        text = (
            f"Under {strategy}, {token_label(self.lm.token_str(token_id))} {gap} positions after the prompt "
            f"(position {t + gap}) puts {state['prompt_mass']:.4f} of its attention on the prompt "
            f"(layer {layer}: {float(layer_mass[layer]):.4f}); its top next tokens are {_sentence(top[:3])}."
        )
        fig, (left, right) = plots.live_figure(10, 3.6, 2, width_ratios=[3, 2])
        title = f"{strategy}, gap {gap}: prompt mass per layer"
        plots.layer_mass_bars(layer_mass.tolist(), layer, title, left)
        plots.top_token_bars([x[0] for x in top], [x[1] for x in top], "top next tokens", right)
        return LiveView(text, fig, state)


class CompressedExplorer(Explorer):
    """Compressed thoughts: the likely next tokens placed after a gap, each expanded into a path."""

    name, title = "compressed", "Compressed"

    def __init__(self, session: LiveSession):
        super().__init__(session)
        self.generator = CompressedThoughtGenerator(self.lm)  # one core for every update

    def controls(self) -> dict[str, Control]:
        return {
            "prompt": Control("The answer is", kind="text", description="prompt"),
            "gap": Control(5.0, 0.0, 50.0, 0.5, description="gap"),
            "threshold": Control(0.05, 0.01, 0.5, 0.01, description="threshold"),
            "path_length": Control(8, 1, 20, 1, description="path length"),
        }

    def update(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        prefix = self.session.use_prompt(values["prompt"])
        res = self.generator.generate(
            values["prompt"], gap=values["gap"], threshold=values["threshold"],
            path_length=int(values["path_length"]), progress=False, prefix=prefix,
        )  # fmt: skip
        state = {
            "explorer": self.name,
            "candidates": [[c.token, round(c.prob, 6)] for c in res.candidates],
            "paths": [p.text for p in res.paths],
            "first_position": res.prompt_len + res.gap,
            "prefills": self.session.prefills,
        }
        best = res.paths[0]
        text = (
            f"After a gap of {res.gap:g}, {len(res.paths)} candidate(s) reach {res.threshold:g}; the most "
            f"probable, {token_label(best.candidate.token)} ({best.candidate.prob:.4f}), continues as "
            f"{best.text!r}."
        )
        title = f"{res.prompt!r}: gap {res.gap:g}, threshold {res.threshold:g}"
        fig, (ax,) = plots.live_figure(12, 0.6 + 0.45 * len(res.paths) + 0.6)
        fig.subplots_adjust(left=0.16, bottom=0.25)
        return LiveView(text, plots.thought_paths(res.paths, title, ax), state)


class ParallelExplorer(Explorer):
    """TEMPO parallel tokens: the sets a threshold selects, isolated or visible, and their attention."""

    name, title = "parallel", "TEMPO sets"
    MAX_STEPS = 10

    def __init__(self, session: LiveSession):
        super().__init__(session)
        self.generator = ParallelTokenGenerator(self.lm)  # one core for every run
        self._run: tuple[tuple, Any] | None = None

    def controls(self) -> dict[str, Control]:
        config = self.lm.model.config
        return {
            "prompt": Control("The cat sat on the", kind="text", description="prompt"),
            "threshold": Control(0.1, 0.02, 0.5, 0.01, description="threshold"),
            "mode": Control("isolated", options=["isolated", "visible"], kind="toggle", description="sets"),
            "layer": Control(-1, -1, config.num_hidden_layers - 1, 1, description="layer (-1 = mean)"),
            "head": Control(-1, -1, config.num_attention_heads - 1, 1, description="head (-1 = mean)"),
            "set": Control(0, 0, self.MAX_STEPS - 1, 1, description="highlighted set"),
        }

    def update(self, values: dict[str, Any], progress: Progress | None = None) -> LiveView:
        self.session.use_prompt(values["prompt"])  # validates the prompt the way every explorer does
        key = (values["prompt"], float(values["threshold"]), values["mode"])
        if self._run is None or self._run[0] != key:
            res = self.generator.generate(
                values["prompt"], threshold=float(values["threshold"]), max_steps=self.MAX_STEPS,
                intraset=values["mode"], capture=True, progress=False, on_step=progress,
            )  # fmt: skip
            self._run = (key, res)
        res = self._run[1]
        layer, head = int(values["layer"]), int(values["head"])
        attention = res.attention_map(None if layer < 0 else layer, None if head < 0 else head)
        spans = set_spans(res)
        k, a, b = spans[min(int(values["set"]), len(spans) - 1)]
        mass = later_mass(res, attention)
        later = mass[mass["step"] == k]["mass"]
        state = {
            "explorer": self.name,
            "text": res.text,
            "sets": [s.tokens for s in res.steps],
            "highlighted": k,
            "later_mass": round(float(later.iloc[0]), 6) if len(later) else None,
        }
        members = "/".join(token_label(t) for t in res.steps[k].tokens)
        said = "nothing follows it"
        if len(later):
            said = f"later tokens give it {state['later_mass']:.4f} of their attention"
        text = (
            f"At threshold {values['threshold']:g} ({values['mode']}): {res.text!r}. Set {k} [{members}] "
            f"sits at position {res.steps[k].position:g}; {said}."
        )
        fig, (ax,) = plots.live_figure(7.5, 6.6)
        fig.subplots_adjust(left=0.22, bottom=0.22)
        tokens = [self.lm.token_str(i) for i in res.input_ids[0].tolist()]
        im = plots.attention_map(ax, attention.sqrt(), tokens, spans, f"{values['mode']}: sqrt of attention")
        box = Rectangle((a - 0.5, a - 0.5), b - a, len(tokens) - a, fill=False, edgecolor="#ff3030", lw=1.8)
        ax.add_patch(box)
        fig.colorbar(im, ax=ax, shrink=0.7, label="sqrt(attention)")
        return LiveView(text, fig, state)


EXPLORERS: dict[str, type[Explorer]] = {
    e.name: e for e in (GapExplorer, PositionExplorer, ParallelExplorer, CompressedExplorer)
}
