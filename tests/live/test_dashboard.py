"""The live dashboard: one tab per phenomenon's explorer over one session; updates through the worker, the
prefix cache reused, memory flat."""

from __future__ import annotations

import html
import json

import pytest

from tempo_lab.phenomena.dashboard import Dashboard, explore, explorers
from tests.helpers import HANG_S

PROMPT = "Once upon a time"


def test_the_dashboard_has_a_tab_per_explorer_with_a_title_that_fits(tiny):
    board = Dashboard(tiny, list(explorers()), {})
    titles = [board.widget.get_title(i) for i in range(len(board.panels))]
    assert titles == [p.view.title for p in board.panels.values()] and all(0 < len(t) <= 15 for t in titles)
    # every tab opened with its first view; on the byte-level tiny model " there" is not one token: that tab
    # shows tempo_lab's message, not an internal error
    assert all(p.renders == 1 and "internal error" not in p.rendered.text for p in board.panels.values())
    assert "encodes to 6 tokens" in board.panels["gap_dropout"].rendered.state["error"]


def test_dashboard_panels_update_through_the_worker_and_memory_stays_flat(tiny):
    import gc
    import tracemalloc

    board = explore(tiny, only="retroactive", prompt=PROMPT, token="x")
    panel = board.panels["retroactive"]

    def shown() -> dict:  # what the hidden state element holds, as the page would read it
        return json.loads(html.unescape(panel.state.value))

    assert panel.renders == 1 and shown()["view"] == "retroactive" and panel.image.value[:4] == b"\x89PNG"
    gap = panel.controls["gap"]
    tracemalloc.start()
    for i in range(200):
        gap.value = round(0.1 * (i % 50), 1)
        if i == 20:
            assert panel.runner.wait(HANG_S)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
    assert panel.runner.wait(HANG_S)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 5 * 2**20, f"memory grew by {(after - before) / 2**20:.1f} MiB over 180 updates"
    assert board.session.prefills == 1
    t = tiny.encode(PROMPT).shape[1]
    assert shown()["values"]["gap"] == gap.value and shown()["position"] == t + gap.value
    with pytest.raises(ValueError, match="unknown explorer 'nope'"):
        explore(tiny, only="nope")
