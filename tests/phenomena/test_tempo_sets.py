"""The TEMPO-sets slice on the tiny model: the render of a run's attention map against the map's own
numbers, and the live explorer, which reruns only when the run changes."""

from __future__ import annotations

import pytest

from tempo_lab.generators import ParallelTokenGenerator
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena.tempo_sets import display as tempo_sets_display
from tempo_lab.summaries import set_spans

PROMPT = "Once upon a time"


def test_parallel_explorer_reruns_only_when_the_run_changes(tiny):
    explorer = tempo_sets_display.explorer(LiveSession(tiny))
    steps = []
    values = {"prompt": PROMPT, "threshold": 0.05, "mode": "isolated", "layer": -1, "head": -1, "set": 1}
    view = explorer(**values, progress=lambda done, total: steps.append((done, total)))
    res = ParallelTokenGenerator(tiny).generate(PROMPT, threshold=0.05, max_steps=10, progress=False)
    assert view.state["run_text"] == res.text and view.state["sets"] == [s.tokens for s in res.steps]
    assert steps and steps[-1][1] == 10 and [d for d, _ in steps] == list(range(1, len(steps) + 1))
    steps.clear()
    explorer(**{**values, "layer": 0, "head": 1, "set": 2}, progress=lambda d, t: steps.append(d))
    assert steps == []  # only re-rendered
    explorer(**{**values, "mode": "visible"}, progress=lambda d, t: steps.append(d))
    assert steps  # a new run


def test_render_highlights_a_set_and_reports_its_later_attention(tiny):
    run = ParallelTokenGenerator(tiny).generate(PROMPT, threshold=0.03, max_steps=6, capture=True,
                                                progress=False)  # fmt: skip
    tokens = [tiny.token_str(i) for i in run.input_ids[0].tolist()]
    spans = set_spans(run)
    n = run.input_ids.shape[1]
    for index, (k, a, b) in enumerate(spans):
        shown = tempo_sets_display.render(run, tokens, index, -1, -1)
        assert f"set {k} [" in shown.text and shown.state["highlighted"] == k
        if b < n:
            mass = float(run.attention_map()[b:, a:b].sum(-1).mean())
            assert shown.state["later_mass"] == pytest.approx(mass, abs=1e-6)
            assert f"later tokens' attention on it {mass:.4f}" in shown.text
        else:
            assert shown.state["later_mass"] is None and "no later tokens" in shown.text
        rect = shown.figure.axes[0].patches[-1]  # the highlight, drawn last
        assert rect.get_xy() == (a - 0.5, a - 0.5) and rect.get_width() == b - a
    last = tempo_sets_display.render(run, tokens, 99, 0, 1)
    assert last.state["highlighted"] == spans[-1][0] and "layer 0, head 1" in last.text
    with pytest.raises(ValueError, match="layer must be in -1..1"):
        tempo_sets_display.render(run, tokens, 0, 5, -1)
