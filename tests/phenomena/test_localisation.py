"""Where position acts (notebook 09): the one-prompt localisation against independent paths, the band
collapse, the view, and the retroactive explorer's layer and band controls against the layer-by-layer
forward."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import positions as pos
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import PositionEdit, Site, intervene, patch_naively, tv_to
from tempo_lab.layout import Layout
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import widened
from tempo_lab.phenomena import localisation as loc
from tempo_lab.phenomena.localisation import display as loc_display
from tempo_lab.phenomena.localisation import summary as loc_summary
from tempo_lab.phenomena.retroactive import display as retroactive_display
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same, check_figure, check_view
from tests.interventions.reference import layer_by_layer

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def comma(tiny):
    ids, clean, corrupt = loc.retro_pair(tiny, PROMPT, ",", 9.5)
    return ids, clean, corrupt, loc.localise(tiny, ids, clean, corrupt, name="gap 9.5")


def test_the_localisation_matches_its_independent_paths(tiny, comma):
    ids, clean, corrupt, found = comma
    core = DecodingCore(tiny)
    reference = torch.softmax(core.full(ids, clean)[0, -1], -1)
    moved = torch.softmax(core.full(ids, corrupt)[0, -1], -1)
    assert found.effect == pytest.approx(float(0.5 * (moved - reference).abs().sum()), abs=1e-6)
    assert found.moved == [ids.shape[1] - 1]
    assert found.layers.recovered.iloc[-1] == pytest.approx(1.0, abs=1e-5)  # the last layer restores it all
    slot = ids.shape[1] - 1
    heads = [Site("head", layer, slot, head) for layer in range(2) for head in range(4)]
    naive = patch_naively(tiny, ids, clean, corrupt, tv_to(reference), heads)
    shares = [(found.effect - v) / found.effect for v in naive]
    assert_same(widened(torch.tensor(found.heads.to_numpy().ravel())), torch.tensor(shares))
    for band in (0, 3, 7):  # the move seen by one band: a plain forward under a one-band edit
        shift = (corrupt.positions - clean.positions)[0]
        with intervene(tiny, PositionEdit(shift, bands=[band])):
            probs = torch.softmax(core.full(ids, clean)[0, -1], -1)
        expected = float(0.5 * (probs - reference).abs().sum())
        assert found.bands.effect.iloc[band] == pytest.approx(expected, abs=1e-5)
    assert found.bands.share.sum() == pytest.approx(1.0)


def test_the_per_layer_gradient_sums_to_a_finite_difference_of_the_effect():
    lm = tiny_random("llama")
    lm.model.double()
    ids, clean, corrupt = loc.retro_pair(lm, PROMPT, ",", 6.25)
    found = loc.localise(lm, ids, clean, corrupt, heads=False, bands=False)
    core = DecodingCore(lm)
    reference = torch.softmax(core.full(ids, clean)[0, -1], -1)
    values = []
    for h in (5e-3, -5e-3):
        p = corrupt.positions.double().clone()
        p[0, -1] += h
        probs = torch.softmax(core.full(ids, Layout(p))[0, -1], -1)
        values.append(float(0.5 * (probs - reference).abs().sum()))
    expected = (values[0] - values[1]) / 1e-2
    assert float(found.gradient.gradient.sum()) == pytest.approx(expected, abs=2e-3 * max(1.0, abs(expected)))


def test_a_mask_pair_is_localised_by_layers_and_heads_only(tiny):
    from tempo_lab.generators import ParallelTokenGenerator

    run = ParallelTokenGenerator(tiny).generate(PROMPT, threshold=0.012, max_steps=4, progress=False)
    upto = next(k for k, size in enumerate(run.set_sizes) if size > 1) + 1  # up to a set of two or more
    ids, visible, isolated = loc.set_pair(run, upto)
    found = loc.localise(tiny, ids, visible, isolated)
    assert found.bands is None and found.gradient is None and found.moved == []
    assert found.effect > 0 and found.layers.recovered.iloc[-1] == pytest.approx(1.0, abs=1e-5)


def test_entry_layers_read_where_a_curve_rises():
    assert loc.entry_layers([0.0, 0.1, 0.3, 0.5, 0.8, 1.0]) == (2, 4)
    assert loc.entry_layers([0.9, 1.0]) == (0, 0)
    assert loc.entry_layers([0.0, 0.1]) == (None, None)


def test_a_layer_no_prompt_localises_is_nan_and_the_sentence_says_so():
    """A far move whose effect is under MIN_EFFECT for every prompt has NaN shares: the curve keeps the layer
    as NaN (no bootstrap of nothing) and no layer is named."""
    import pandas as pd

    nan = float("nan")
    table = pd.DataFrame(
        [{"prompt": p, "measure": "recovered", "gap": 46.0, "index": layer, "value": v}
         for p in range(3) for layer, v in enumerate([nan, nan, nan])]  # fmt: skip
    )
    c = loc_summary.curve(table, "recovered", 46.0)
    assert c["index"].tolist() == [0, 1, 2] and c["mean"].isna().all() and c["n"].tolist() == [0, 0, 0]
    assert loc_summary.localisation_sentence(c).startswith("no layer restores 75% of it")


def test_band_collapse_finds_previous_token_heads_by_the_stated_rule(tiny):
    lm = tiny
    ids = lm.encode("The old lighthouse keeper climbed the spiral stairs every evening, long after the ships")
    collapse = loc.collapse_bands(lm, ids, loc.band_groups(8, 4))
    assert collapse.groups == [[0, 1], [2, 3], [4, 5], [6, 7]]
    for layer, head in collapse.heads:
        assert collapse.scores[layer, head] >= loc.PREVIOUS_TOKEN_RULE
    assert (collapse.scores < loc.PREVIOUS_TOKEN_RULE).sum() == collapse.scores.numel() - len(collapse.heads)
    assert len(collapse.frame) == 4 and (collapse.frame.tv >= 0).all()
    check_figure(loc_display.collapse_figure(collapse, "collapse"))


def test_the_replay_view_and_the_figures(comma):
    *_, found = comma
    check_view(loc_display.view({"gap 9.5": found}))
    rendered = loc_display.view({"gap 9.5": found})(which="gap 9.5", layer=1, band=2)
    assert rendered.state["recovered"] == pytest.approx(round(float(found.layers.recovered.iloc[1]), 6))
    for fig in (
        loc_display.recovery_figure({"a": found}, "t"),
        loc_display.heads_figure(found, "t"),
        loc_display.bands_figure({"a": found}, "t"),
        loc_display.gradient_figure({"a": found}, "t"),
    ):
        check_figure(fig)
    with pytest.raises(ValueError, match="no localisation named 'gap 3'"):
        loc_display.view({"gap 9.5": found})(which="gap 3")


def test_the_live_move_seen_by_some_layers_equals_the_layer_by_layer_forward(tiny):
    session = LiveSession(tiny)
    view = retroactive_display.explorer(session)
    assert {"layers_from", "layers_to", "bands"} <= set(view.controls)
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    token = tiny.token_id(",")
    full = torch.cat([ids, torch.tensor([[token]])], 1)
    per_layer = torch.stack([pos.contiguous(t + 1)[0], pos.with_gap(t, 1, 6.5)[0]])  # layer 1 alone sees +6.5
    expected = torch.softmax(layer_by_layer(tiny, full, per_layer)[-1], -1)
    view(prompt=PROMPT, token=",", gap=6.5, gap_range=10)  # the prompt's prefill
    calls = []
    hook = tiny.model.base_model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        shown = view(prompt=PROMPT, token=",", gap=6.5, gap_range=10, layers_from=1, layers_to=1)
    finally:
        hook.remove()
    assert len(calls) == 1  # one cached step: the move and the curve, as a plain move is
    shown_top = [
        p for _, p in shown.state["top"]
    ]  # the top tokens' probabilities, as shown (rounded to 1e-6)
    assert shown_top == pytest.approx(expected.topk(len(shown_top)).values.tolist(), abs=2e-6)
    assert shown.state["seen_by_layers"] == [1, 1] and "seen by layers 1-1" in shown.text
    banded = view(prompt=PROMPT, token=",", gap=6.5, gap_range=10, bands="0-1")
    with intervene(tiny, PositionEdit(torch.tensor([0.0] * t + [6.5]), bands=[0, 1])):
        probs = torch.softmax(DecodingCore(tiny).full(full, Layout(pos.contiguous(t + 1)))[0, -1], -1)
    banded_top = [p for _, p in banded.state["top"]]
    assert banded_top == pytest.approx(probs.topk(len(banded_top)).values.tolist(), abs=2e-6)
    bad = view(prompt=PROMPT, token=",", gap=6.5, gap_range=10, layers_from=1, layers_to=0)
    assert "layer range 1-0" in bad.state["error"]
