"""The live explorers without a browser: every update runs the model and equals the generators; the prefix
cache is reused (prefills counted); bad input shows our message and the next valid input works; the
latest-wins runner drops stale requests; memory stays flat."""

from __future__ import annotations

import html
import json
import threading
import time

import pytest
import torch

from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.live import (
    CompressedExplorer,
    GapExplorer,
    Latest,
    LiveSession,
    ParallelExplorer,
    PositionExplorer,
    Superseded,
    explore,
)
from tempo_lab.probe import gap_probe

PROMPT = "Once upon a time"


def top_of(lm, probs: torch.Tensor, k: int = 5) -> list[list]:
    p, i = probs.topk(k)
    return [[lm.token_str(int(t)), pytest.approx(float(v), abs=1e-5)] for t, v in zip(i, p, strict=True)]


def test_position_moves_reuse_the_prefix_and_equal_the_generator(tiny):
    session = LiveSession(tiny)
    explorer = PositionExplorer(session)
    t = tiny.encode(PROMPT).shape[1]
    for gap in (0.0, 2.5, 7.3, 30.0):
        view = explorer.render({"prompt": PROMPT, "token": "x", "gap": gap, "gap_range": 10})
        expected = RetroactivePositionGenerator(tiny).explore(PROMPT, positions=[t + gap], token="x")
        assert view.state["position"] == t + gap and view.state["top"] == top_of(tiny, expected.probs[0])
        assert view.state["tv_from_gap0"] == pytest.approx(float(expected.tv[0]), abs=1e-5)
        assert view.figure is not None and "placed at position" in view.text
    assert session.prefills == 1  # four moves, one prefill
    explorer.render({"prompt": "Another prompt", "token": "x", "gap": 1.0, "gap_range": 10})
    assert session.prefills == 2


def forward_shapes(lm, run) -> list[tuple[int, int]]:
    """The ``(batch, q)`` of every forward pass of ``lm`` while ``run()`` runs."""
    calls = []
    hook = lm.model.base_model.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        run()
    finally:
        hook.remove()
    return calls


def test_a_prompt_change_costs_one_prefill_and_one_step(tiny):
    session = LiveSession(tiny)
    explorer = PositionExplorer(session)
    explorer.render({"prompt": PROMPT, "token": "x", "gap": 1.0, "gap_range": 10})
    calls = forward_shapes(
        tiny, lambda: explorer.render({"prompt": "The cat sat", "token": "x", "gap": 1.0, "gap_range": 10})
    )
    # the prefill, then one step: the chosen position, gap 0 and the new prompt's curve as branches of it
    assert calls == [(1, 11), (calls[1][0], 1)] and calls[1][0] > 2 and session.prefills == 2
    calls = forward_shapes(
        tiny, lambda: explorer.render({"prompt": "The cat sat", "token": "x", "gap": 4.2, "gap_range": 10})
    )
    assert calls == [(2, 1)]  # a move: one step of two branches


def test_gap_explorer_equals_the_probe_under_every_strategy(tiny):
    session = LiveSession(tiny)
    explorer = GapExplorer(session)
    frame = gap_probe(tiny, PROMPT, "x", [0, 4])
    for row in frame.itertuples():
        view = explorer.render(
            {"prompt": PROMPT, "token": "x", "strategy": row.strategy, "gap": row.gap, "layer": 1}
        )
        assert view.state["prompt_mass"] == pytest.approx(row.prompt_mass, abs=1e-5), row.strategy
        assert view.state["layer_mass"] == pytest.approx(list(row.layer_mass), abs=1e-5)
        assert [t for t, _ in view.state["top"]] == row.top_tokens
    assert session.prefills == 1


def test_compressed_explorer_equals_the_generator_without_a_new_prefill(tiny):
    session = LiveSession(tiny)
    explorer = CompressedExplorer(session)
    for gap in (0.0, 3.5, 9.0):
        view = explorer.render({"prompt": PROMPT, "gap": gap, "threshold": 0.05, "path_length": 5})
        res = CompressedThoughtGenerator(tiny).generate(
            PROMPT, gap=gap, threshold=0.05, path_length=5, progress=False
        )
        assert view.state["paths"] == [p.text for p in res.paths]
        assert view.state["candidates"] == [
            [c.token, pytest.approx(c.prob, abs=1e-6)] for c in res.candidates
        ]
    assert session.prefills == 1


def test_parallel_explorer_reruns_only_when_the_run_changes(tiny):
    explorer = ParallelExplorer(LiveSession(tiny))
    steps = []
    values = {"prompt": PROMPT, "threshold": 0.05, "mode": "isolated", "layer": -1, "head": -1, "set": 1}
    view = explorer.render(values, progress=lambda done, total: steps.append((done, total)))
    res = ParallelTokenGenerator(tiny).generate(PROMPT, threshold=0.05, max_steps=10, progress=False)
    assert view.state["text"] == res.text and view.state["sets"] == [s.tokens for s in res.steps]
    assert steps and steps[-1][1] == 10 and [d for d, _ in steps] == list(range(1, len(steps) + 1))
    steps.clear()
    explorer.render({**values, "layer": 0, "head": 1, "set": 2}, progress=lambda d, t: steps.append(d))
    assert steps == []  # only re-rendered
    explorer.render({**values, "mode": "visible"}, progress=lambda d, t: steps.append(d))
    assert steps  # a new run


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "a" * 600}, "the prompt (600 tokens) reaches position 599, past the model's context"),
        ({"token": "xy"}, "'xy' encodes to 2 tokens"),
        ({"gap": -1.0}, "position 15 is inside the prompt (16 tokens, positions 0..15)"),
    ],
)
def test_bad_input_shows_our_message_and_the_next_valid_input_works(tiny, values, message):
    explorer = PositionExplorer(LiveSession(tiny))
    good = {"prompt": PROMPT, "token": "x", "gap": 1.0, "gap_range": 10}
    view = explorer.render({**good, **values})
    assert view.figure is None and message in view.state["error"] and view.text.startswith("⚠")
    assert "error" not in explorer.render(good).state


def test_position_inside_the_prompt_is_refused(tiny):
    session = LiveSession(tiny)
    session.use_prompt(PROMPT)
    with pytest.raises(ValueError, match="position 3 is inside the prompt"):
        session.place("x", [3.0])


def test_latest_wins_and_stale_runs_are_abandoned():
    started, delivered = [], []
    release = threading.Event()

    def work(request, generation):
        started.append(request)
        if request == "first":
            release.wait(5)
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
    assert runner.wait(5)
    assert started == ["first", "fourth"] and delivered == [
        "FOURTH"
    ]  # "first" went stale, the rest coalesced


def test_dashboard_panels_update_through_the_worker_and_memory_stays_flat(tiny):
    import gc
    import tracemalloc

    board = explore(tiny, only="position", prompt=PROMPT, token="x")
    panel = board.panels["position"]

    def shown() -> dict:  # what the hidden state element holds, as the page would read it
        return json.loads(html.unescape(panel.state.value))

    assert panel.renders == 1 and shown()["explorer"] == "position" and panel.image.value[:4] == b"\x89PNG"
    gap = panel.controls["gap"]
    tracemalloc.start()
    for i in range(200):
        gap.value = round(0.1 * (i % 50), 1)
        if i == 20:
            assert panel.runner.wait(30)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
    assert panel.runner.wait(60)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 5 * 2**20, f"memory grew by {(after - before) / 2**20:.1f} MiB over 180 updates"
    assert board.session.prefills == 1
    t = tiny.encode(PROMPT).shape[1]
    assert shown()["values"]["gap"] == gap.value and shown()["position"] == t + gap.value
    with pytest.raises(ValueError, match="unknown explorer 'nope'"):
        explore(tiny, only="nope")
