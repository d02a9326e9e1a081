"""The one view framework: replay views re-render at once, live views run on a worker thread where the
latest request wins; a panel's hidden state holds what its render returned."""

from __future__ import annotations

import html
import json
import threading
import time

import pytest

from tempo_lab.phenomena.gap_dropout import gap_probe
from tempo_lab.phenomena.gap_dropout.display import view
from tempo_lab.views import Control, Latest, Panel, Rendered, Superseded, live_view, show
from tests.helpers import HANG_S


def test_show_is_a_no_op_without_a_kernel(tiny):
    assert show(view(gap_probe(tiny, "The cat sat", "!", [0, 2], top_k=2))) is None


def test_a_replay_panel_re_renders_on_every_move_and_keeps_its_state(tiny):
    panel = Panel(view(gap_probe(tiny, "The cat sat", "!", [0, 2, 7], top_k=2)), layer=1)
    state = json.loads(html.unescape(panel.state.value))
    assert state["view"] == "gap_dropout" and state["values"] == {"gap": 2, "strategy": "default_no_cache",
                                                                   "layer": 1}  # fmt: skip
    assert panel.image.value[:4] == b"\x89PNG" and panel.renders == 1
    panel.controls["gap"].value = 7
    state = json.loads(html.unescape(panel.state.value))
    assert panel.renders == 2 and state["values"]["gap"] == 7 and state["text"] == panel.rendered.text
    assert "gap 7" in html.unescape(panel.text.value)
    with pytest.raises(ValueError, match="has no control 'nope'"):
        Panel(view(gap_probe(tiny, "The cat sat", "!", [0, 2], top_k=2)), nope=1)


def test_a_live_view_shows_bad_input_as_its_message_and_a_bug_as_an_internal_error():
    def update(values, progress):
        if values["x"] < 0:
            raise ValueError(f"x must be >= 0, got {values['x']}")
        if values["x"] > 5:
            raise KeyError("a bug")
        return Rendered(f"x = {values['x']}", None, {"x": values["x"]})

    live = live_view("demo", "Demo", {"x": Control(1, -3, 9, 1)}, update)
    assert live(x=-2).state == {"error": "x must be >= 0, got -2"} and live(x=-2).text.startswith("⚠")
    panel = Panel(live)
    panel.controls["x"].value = 7
    assert panel.runner.wait(HANG_S)
    state = json.loads(html.unescape(panel.state.value))
    assert state["error"].startswith("KeyError") and "internal error" in state["text"]
    panel.controls["x"].value = 3
    assert panel.runner.wait(HANG_S)
    assert json.loads(html.unescape(panel.state.value))["x"] == 3


def test_latest_wins_and_stale_runs_are_abandoned():
    started, delivered = [], []
    release = threading.Event()

    def work(request, generation):
        started.append(request)
        if request == "first":
            release.wait(HANG_S)
        for _ in range(3):
            if runner.stale(generation):
                raise Superseded
            time.sleep(0.01)
        return request.upper()

    runner = Latest(work, lambda request, result: delivered.append(result))
    runner.submit("first")
    while not started:
        time.sleep(0.005)
    for r in ("second", "third", "fourth"):  # arrive while "first" runs
        runner.submit(r)
    release.set()
    assert runner.wait(HANG_S)
    assert started == ["first", "fourth"] and delivered == [
        "FOURTH"
    ]  # "first" went stale, the rest coalesced


