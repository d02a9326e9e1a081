"""The gap dropout slice on the tiny model: the probe (the dropout, our mask == the cached path, the frame,
bad input), its tables and figures, the one render its replay view and live explorer share, and both views
against independent numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tempo_lab import capture_attention, positions
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena.gap_dropout import display as gap_dropout_display
from tempo_lab.phenomena.gap_dropout import probe
from tempo_lab.phenomena.gap_dropout.probe import (
    COLUMNS,
    STRATEGIES,
    STRATEGY_DESCRIPTIONS,
    gap_probe,
    strategy_forward,
)
from tests.helpers import assert_same, check_figure, check_view, first_control_values

PROMPT = "Once upon a time,"
GAPS = (0, 1, 5, 20)


@pytest.fixture(scope="module")
def result(tiny):
    return gap_probe(tiny, PROMPT, "x", GAPS)


@pytest.fixture(scope="module")
def frame(result):
    return result.frame


def _cached(lm, prompt_ids, token_id, gap):
    """Independent path: prefill the prompt, then one cached step with the token at ``T + gap``.

    Returns the step's logits ``(vocab,)`` and its attention record."""
    core = DecodingCore(lm)
    t = prompt_ids.shape[1]
    prefix = core.prefill(prompt_ids)
    with capture_attention(lm.model) as rec:
        logits = core.step(prefix.cache, torch.tensor([[token_id]]), Layout(torch.tensor([[t + float(gap)]])))
    return logits[0, -1], rec


def test_strategies_are_described():
    assert set(STRATEGY_DESCRIPTIONS) == set(STRATEGIES)
    assert all(isinstance(d, str) and d for d in STRATEGY_DESCRIPTIONS.values())


def test_frame_layout(tiny, result, frame):
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(STRATEGIES) * len(GAPS)
    assert list(frame["strategy"]) == [s for s in STRATEGIES for _ in GAPS]
    assert list(frame["gap"]) == list(GAPS) * len(STRATEGIES)
    t = tiny.encode(PROMPT).shape[1]
    assert (frame["prompt_len"] == t).all()
    assert list(frame["position"]) == [t + g for g in GAPS] * len(STRATEGIES)
    assert (frame["token"] == "x").all() and (frame["token_id"] == tiny.token_id("x")).all()
    n_layers = tiny.model.config.num_hidden_layers
    for _, row in frame.iterrows():
        assert isinstance(row.layer_mass, np.ndarray) and row.layer_mass.shape == (n_layers,)
        assert row.prompt_mass == pytest.approx(float(row.layer_mass.mean()), abs=1e-6)
        assert len(row.top_tokens) == len(row.top_ids) == len(row.top_probs) == 5
        assert row.top_probs == sorted(row.top_probs, reverse=True)
        assert row.top1 == row.top_tokens[0] == tiny.token_str(row.top_ids[0]) and row.p1 == row.top_probs[0]
    assert result.prompt == PROMPT and "".join(result.prompt_tokens) == PROMPT
    assert result.token_id == tiny.token_id("x") and result.model == "tiny-random"


def test_dropout_without_cache_and_mask(frame):
    nc = frame[frame.strategy == "default_no_cache"].set_index("gap")
    ours = frame[frame.strategy == "additive_4d"].set_index("gap")
    for gap in GAPS[1:]:
        assert nc.loc[gap, "prompt_mass"] == 0.0
        assert np.all(nc.loc[gap, "layer_mass"] == 0.0)
        assert ours.loc[gap, "prompt_mass"] > 0.1
        assert np.all(ours.loc[gap, "layer_mass"] > 0)
    # at gap 0 there is no gap, hence no dropout: all strategies agree
    gap0 = frame[frame.gap == 0]
    assert gap0.prompt_mass.max() - gap0.prompt_mass.min() < 1e-6
    assert gap0.prompt_mass.min() > 0.1


def test_after_the_gap_the_token_behaves_as_if_alone(tiny):
    """Under the dropout the post-gap token sees only itself: its logits equal the token's run alone."""
    prompt_ids = tiny.encode(PROMPT)
    t = prompt_ids.shape[1]
    token = tiny.token_id("x")
    ids = torch.cat([prompt_ids, torch.tensor([[token]])], 1)
    with torch.no_grad():
        alone = tiny.model(torch.tensor([[token]])).logits[0, -1]
    for gap in (1, 5):
        dropped = strategy_forward(
            tiny, ids, positions.with_gap(t, 1, gap), "default_no_cache", capture=False
        )
        assert_same(dropped.logits[0], alone)
        ours = strategy_forward(tiny, ids, positions.with_gap(t, 1, gap), "additive_4d", capture=False)
        assert (ours.logits[0] - alone).abs().max() > 1e-2


@pytest.mark.parametrize("gap", [0, 1, 5, 20, 2.5])
def test_our_mask_equals_the_cached_path(tiny, gap):
    prompt_ids = tiny.encode(PROMPT)
    t = prompt_ids.shape[1]
    token = tiny.token_id("x")
    ids = torch.cat([prompt_ids, torch.tensor([[token]])], 1)
    ref_logits, ref_rec = _cached(tiny, prompt_ids, token, gap)
    for strategy in ("additive_4d", "default_cache", "ones_2d"):
        got = strategy_forward(tiny, ids, positions.with_gap(t, 1, gap), strategy)
        assert_same(got.logits[0], ref_logits, msg=strategy)
        assert_same(got.attention.mass(slice(0, t))[:, 0], ref_rec.mass(slice(0, t))[:, 0], msg=strategy)


def test_frame_numbers_equal_the_cached_path(tiny, frame):
    prompt_ids = tiny.encode(PROMPT)
    t = prompt_ids.shape[1]
    for _, row in frame[frame.strategy == "additive_4d"].iterrows():
        logits, rec = _cached(tiny, prompt_ids, row.token_id, row.gap)
        top = torch.softmax(logits, -1).topk(5)
        assert row.top_ids == top.indices.tolist()
        np.testing.assert_allclose(row.top_probs, top.values.cpu().numpy(), atol=1e-5)
        per_layer = rec.mass(slice(0, t))[:, 0].mean(-1).cpu().numpy()  # (layers,)
        np.testing.assert_allclose(row.layer_mass, per_layer, atol=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_batched_rows_are_independent(tiny, strategy):
    """A batch of gaps (as the probe runs them) gives each row what a batch of one gives."""
    prompt_ids = tiny.encode(PROMPT)
    t = prompt_ids.shape[1]
    ids = torch.cat([prompt_ids, torch.tensor([[tiny.token_id("x")]])], 1)
    gaps = [0, 5, 1.5]
    together = strategy_forward(
        tiny, ids.expand(3, -1), torch.cat([positions.with_gap(t, 1, g) for g in gaps]), strategy
    )
    for r, gap in enumerate(gaps):
        alone = strategy_forward(tiny, ids, positions.with_gap(t, 1, gap), strategy)
        assert_same(together.logits[r], alone.logits[0])
        for got, ref in zip(together.attention.weights, alone.attention.weights, strict=True):
            assert_same(got[r], ref[0])


def test_chunked_probe_equals_one_batch(tiny, frame, monkeypatch):
    monkeypatch.setattr(probe, "CAPTURE_BUDGET_BYTES", 1)  # one gap per forward pass
    one_by_one = gap_probe(tiny, PROMPT, "x", GAPS).frame
    np.testing.assert_allclose(one_by_one.prompt_mass, frame.prompt_mass, atol=1e-6)
    np.testing.assert_allclose(np.stack(one_by_one.layer_mass), np.stack(frame.layer_mass), atol=1e-6)
    assert one_by_one.top_ids.tolist() == frame.top_ids.tolist()


def test_default_token_is_the_greedy_next_token(tiny):
    res = gap_probe(tiny, PROMPT, gaps=[0, 3], strategies=["additive_4d"], top_k=2)
    f = res.frame
    greedy = int(DecodingCore(tiny).prefill(tiny.encode(PROMPT)).next_logits.argmax())
    assert res.token_id == greedy and (f.token_id == greedy).all()
    assert len(f) == 2 and len(f.top_tokens[0]) == 2
    by_id = gap_probe(tiny, PROMPT, greedy, gaps=[0, 3], strategies=["additive_4d"], top_k=2).frame
    assert by_id.prompt_mass.tolist() == f.prompt_mass.tolist()


def test_sdpa_model_gives_the_same_frame(tiny, tiny_sdpa, frame):
    f = gap_probe(tiny_sdpa, PROMPT, "x", GAPS).frame
    assert tiny_sdpa.model.config._attn_implementation == "sdpa"
    np.testing.assert_allclose(f.prompt_mass, frame.prompt_mass, atol=1e-6)
    np.testing.assert_allclose(np.stack(f.p1), np.stack(frame.p1), atol=1e-5)


def test_tables(result, frame):
    table = gap_dropout_display.mass_table(result)
    assert list(table.columns) == list(STRATEGIES) and list(table.index) == list(GAPS)
    assert (
        table.loc[5, "additive_4d"]
        == frame[(frame.strategy == "additive_4d") & (frame.gap == 5)].prompt_mass.item()
    )
    tops = gap_dropout_display.top_token_table(result)
    row = frame[(frame["strategy"] == "additive_4d") & (frame["gap"] == 5)].iloc[0]
    assert tops.loc[5, "additive_4d"] == f"{row.top1!r} {row.p1:.4f}"
    with pytest.raises(ValueError, match="no probe row for strategy 'ones_2d' at gap 3"):
        result.row("ones_2d", 3)


def test_fractional_gap_on_a_rotary_model(tiny):
    f = gap_probe(tiny, PROMPT, "x", [0.5, 1], strategies=["default_no_cache", "additive_4d"]).frame
    assert f.position.tolist()[:1] == [tiny.encode(PROMPT).shape[1] + 0.5]
    assert (f[f.strategy == "default_no_cache"].prompt_mass == 0).all()  # any step other than +1 splits
    assert (f[f.strategy == "additive_4d"].prompt_mass > 0).all()


def test_non_rotary_model_integer_gaps_only(tiny_gpt2):
    f = gap_probe(tiny_gpt2, PROMPT, "x", [0, 3], strategies=["default_no_cache", "additive_4d"]).frame
    assert f.set_index(["strategy", "gap"]).loc[("default_no_cache", 3), "prompt_mass"] == 0.0
    assert f.set_index(["strategy", "gap"]).loc[("additive_4d", 3), "prompt_mass"] > 0
    with pytest.raises(ValueError, match=r"gaps\[1\] = 0\.5 is fractional.*no rotary"):
        gap_probe(tiny_gpt2, PROMPT, "x", [0, 0.5])


class _ForwardCounter:
    """Counts forward passes of a model while active (a pre-hook, removed on exit)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __enter__(self):
        self.handle = self.model.register_forward_pre_hook(lambda *_: setattr(self, "calls", self.calls + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"prompt": ""}, ValueError, "prompt is empty"),
        ({"gaps": [0, -1]}, ValueError, r"gaps\[1\] must be a finite number >= 0, got -1$"),
        ({"gaps": [math.nan]}, ValueError, r"gaps\[0\] must be a finite number >= 0, got nan$"),
        ({"gaps": [0, math.inf]}, ValueError, r"gaps\[1\] must be a finite number >= 0, got inf$"),
        ({"gaps": [0, 1, 600]}, ValueError, r"gaps\[2\] = 600 reaches position 617, past the .*= 512"),
        ({"gaps": [0, "5"]}, ValueError, r"gaps\[1\] must be a finite number >= 0, got '5'$"),
        ({"gaps": [True]}, ValueError, r"gaps\[0\] must be a finite number >= 0, got True$"),
        ({"gaps": []}, ValueError, "at least one gap"),
        ({"gaps": [0, 5, 5.0]}, ValueError, r"gaps\[2\] = 5 repeats gaps\[1\]"),
        ({"strategies": ["additive_4d", "bool_4d"]}, ValueError, r"strategies\[1\] must be .*got 'bool_4d'"),
        ({"strategies": []}, ValueError, "at least one strategy"),
        ({"top_k": 0}, ValueError, r"top_k must be an integer in 1\.\.257, got 0"),
        ({"top_k": 300}, ValueError, "got 300"),
        ({"token": "xy"}, ValueError, "exactly one token"),
        ({"token": 1000}, ValueError, "token id 1000 is outside the vocabulary"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(tiny, kwargs, error, match):
    args = {"prompt": PROMPT, "token": "x", "gaps": GAPS} | kwargs
    with _ForwardCounter(tiny.model) as counter, pytest.raises(error, match=match):
        gap_probe(tiny, args.pop("prompt"), **args)
    assert counter.calls == 0


def test_strategy_forward_refuses_bad_shapes(tiny):
    ids = tiny.encode("abc")
    with pytest.raises(ValueError, match=r"position_ids \(1, 2\) must match input_ids \(1, 3\)"):
        strategy_forward(tiny, ids, positions.contiguous(2), "additive_4d")
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, n\)"):
        strategy_forward(tiny, ids[0], positions.contiguous(3), "additive_4d")
    with pytest.raises(ValueError, match=r"with n >= 1, got \(1, 0\)"):
        strategy_forward(tiny, ids[:, :0], positions.contiguous(3)[:, :0], "additive_4d")
    with pytest.raises(ValueError, match=r"position_ids\[0, 2\] = 1\.0 decreases"):
        strategy_forward(tiny, ids, torch.tensor([[0.0, 2.0, 1.0]]), "additive_4d")
    with pytest.raises(ValueError, match="strategy must be one of 'default_no_cache', .*; got 'sdpa'"):
        strategy_forward(tiny, ids, positions.contiguous(3), "sdpa")


def test_packed_split_evidence_shows_the_token_alone_after_a_gap(tiny):
    at_zero = probe.packed_split_evidence(tiny, PROMPT, "!", 0)
    assert at_zero["segments"] is None
    assert at_zero["logit_diff_vs_explicit_mask"] == 0.0  # no gap: no detection, same as the explicit mask
    gapped = probe.packed_split_evidence(tiny, PROMPT, "!", 3)
    t = len(tiny.encode(PROMPT)[0])
    assert gapped["segments"] == [0] * t + [1]
    assert gapped["positions"][-1] == t + 3
    assert gapped["logit_diff_vs_alone"] < 1e-4  # the token behaves as if the prompt did not exist
    assert gapped["logit_diff_vs_explicit_mask"] > 1e-2


def test_figures(result):
    fig = gap_dropout_display.prompt_mass_lines(result)
    check_figure(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "5", "20"]
    assert {line.get_label() for line in ax.get_lines()} == set(STRATEGIES)
    heat = gap_dropout_display.layer_mass_heatmaps(result)
    assert [a.get_title() for a in heat.axes[:4]] == list(STRATEGIES)
    heat.canvas.draw()


def test_replay_view_reports_the_probe_rows(tiny):
    result = gap_probe(tiny, "The cat sat", "!", [0, 2, 7], top_k=3)
    frame = result.frame
    view = gap_dropout_display.view(result)
    check_view(view)
    assert list(view.controls) == ["gap", "strategy", "layer"]
    assert view.controls["gap"].options == [0, 2, 7] and view.defaults()["gap"] == 2
    for gap in first_control_values(view):
        for strategy in ("default_no_cache", "additive_4d"):
            row = frame[(frame["strategy"] == strategy) & (frame["gap"] == gap)].iloc[0]
            shown = view(gap=gap, strategy=strategy, layer=1)
            assert f"prompt mass {row.prompt_mass:.4f}" in shown.text
            assert f"(layer 1: {float(row.layer_mass[1]):.4f})" in shown.text
            assert f"top {row.top1!r} {row.p1:.4f}" in shown.text
            assert shown.state["layer_mass"] == pytest.approx(list(row.layer_mass), abs=1e-6)
    assert "prompt mass 0.0000" in view(gap=7, strategy="default_no_cache", layer=0).text
    with pytest.raises(ValueError, match="gap"):
        view(gap=3)
    with pytest.raises(ValueError, match="layer"):
        view(layer=99)


def test_live_explorer_equals_the_probe_under_every_strategy(tiny):
    session = LiveSession(tiny)
    explorer = gap_dropout_display.explorer(session)
    result = gap_probe(tiny, "Once upon a time", "x", [0, 4])
    for row in result.frame.itertuples():
        shown = explorer(prompt="Once upon a time", token="x", strategy=row.strategy, gap=row.gap, layer=1)
        assert shown.state["prompt_mass"] == pytest.approx(row.prompt_mass, abs=1e-5), row.strategy
        assert shown.state["layer_mass"] == pytest.approx(list(row.layer_mass), abs=1e-5)
        assert [t for t, _ in shown.state["top"]] == row.top_tokens
        # the same row replayed renders the same sentence
        assert shown.text == gap_dropout_display.render(result.row(row.strategy, row.gap), 1).text
    assert session.prefills == 1


def test_a_kept_live_figure_draws_the_pixels_of_a_fresh_one(tiny):
    """The live explorer keeps its figure and updates its bars, labels and titles on each move: after several
    moves its PNG equals, byte for byte, that of the same row rendered from nothing."""
    from tempo_lab.plots import LiveFigure
    from tempo_lab.views.panel import png

    result = gap_probe(tiny, "Once upon a time", "x", [0, 4, 9])
    kept = LiveFigure()
    for row in result.frame.itertuples():
        for layer in (0, 1):
            moved = gap_dropout_display.render(result.row(row.strategy, row.gap), layer, kept)
            fresh = gap_dropout_display.render(result.row(row.strategy, row.gap), layer)
            assert moved.text == fresh.text and moved.state == fresh.state
            assert png(moved.figure) == png(fresh.figure), (row.strategy, row.gap, layer)
    assert kept.builds == 1
