"""The foundation's facts on the bundled SmolLM2-135M-Instruct (the project's design notes, "Facts measured on
the bundled model").

Few and quick: one model load per session (the ``bundled`` fixture), a handful of forwards of ~7 tokens each.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from tempo_lab import masks, positions
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.layout import Layout
from tempo_lab.phenomena.gap_dropout import gap_probe, strategy_forward
from tests.helpers import real_atol

pytestmark = pytest.mark.bundled

PROMPT, TOKEN = "Once upon a time,", " there"
# The design notes' table: prompt mass of " there" at gap 0/1/5/20, measured independently of this code.
DESIGN_MASS = {0: 0.9427, 1: 0.9210, 5: 0.8454, 20: 0.7745}


@contextmanager
def attn_implementation(lm, name: str) -> Iterator[None]:
    original = lm.model.config._attn_implementation
    lm.model.set_attn_implementation(name)
    try:
        yield
    finally:
        lm.model.set_attn_implementation(original)


def test_bundled_model_basics(bundled):
    assert bundled.is_rotary and bundled.model.config._attn_implementation == "eager"
    assert not bundled.model.training and bundled.dtype == torch.float32
    assert bundled.encode(PROMPT).shape == (1, 5)


def test_gap_dropout_reproduces_the_design_table(bundled):
    frame = gap_probe(bundled, PROMPT, TOKEN, tuple(DESIGN_MASS)).frame
    table = frame.pivot(index="gap", columns="strategy", values="prompt_mass")
    for gap, expected in DESIGN_MASS.items():
        for strategy in ("default_cache", "ones_2d", "additive_4d"):
            assert table.loc[gap, strategy] == pytest.approx(expected, abs=1e-3), (strategy, gap)
        if gap == 0:
            assert table.loc[gap, "default_no_cache"] == pytest.approx(expected, abs=1e-3)
        else:
            assert table.loc[gap, "default_no_cache"] == 0.0
    top1 = frame.set_index(["strategy", "gap"])["top1"]
    assert all(top1[("additive_4d", g)] == " was" for g in DESIGN_MASS)
    assert all(top1[("default_no_cache", g)] == "-" for g in (1, 5, 20))  # the collapse the design names


def test_our_mask_equals_the_cached_path(bundled):
    """Full pass with our mask == prefill + one cached step at the gapped position.

    fp32 on 30 layers: the two paths differ by ~2.5e-5 in logits (|logits| ~ 28, relative ~1e-6) already
    at gap 0, where nothing is gapped, and by up to ~5e-5 when the gaps run as one batch, because the matmuls
    have different shapes. So the logits are checked to 1e-4 and the probabilities to 1e-5 (the 1e-5 logits
    check runs on the tiny model, tests/test_probe.py); the dropout path is off by whole units.
    """
    core = DecodingCore(bundled)
    prompt_ids = bundled.encode(PROMPT)
    t = prompt_ids.shape[1]
    token = bundled.token_id(TOKEN)
    ids = torch.cat([prompt_ids, torch.tensor([[token]])], 1)
    gaps = (0, 1, 5, 20)
    prefix = core.prefill(prompt_ids)
    # one cached step per gap, each on a fresh branch of the same prefix cache (the prefix stays untouched)
    cached = torch.stack(
        [
            core.step(branch(prefix.cache, 1), torch.tensor([[token]]), Layout.of([float(t + g)]))[0, -1]
            for g in gaps
        ]
    )
    gapped = torch.cat([positions.with_gap(t, 1, g) for g in gaps])
    ours = strategy_forward(bundled, ids.expand(len(gaps), -1), gapped, "additive_4d", capture=False).logits
    dropped = strategy_forward(
        bundled, ids.expand(len(gaps), -1), gapped, "default_no_cache", capture=False
    ).logits
    torch.testing.assert_close(ours, cached, atol=real_atol(bundled, cached), rtol=0)
    torch.testing.assert_close(ours.softmax(-1), cached.softmax(-1), atol=real_atol(bundled, 1.0), rtol=0)
    # gap 0: nothing to split
    torch.testing.assert_close(dropped[0], cached[0], atol=real_atol(bundled, cached[0]), rtol=0)
    assert all((dropped[i] - cached[i]).abs().max() > 1.0 for i in (1, 2, 3))


def test_eager_and_sdpa_agree_with_our_masks(bundled):
    """The 1e-4 check runs on the tiny model (tests/test_masks.py). Here, fp32 over 30 layers, eager and SDPA
    differ by up to ~6e-5 in logits on a plain contiguous layout and ~1e-4 on these, so logits are checked to
    2e-4 and probabilities to 1e-5."""
    ids = bundled.encode("The cat sat on the mat")
    n = ids.shape[1]
    t = n - 3
    labels = masks.set_labels([2, 1], prefix_len=t)
    shared = torch.cat([positions.contiguous(t), positions.shared(t, [2, 1])], 1)
    layouts = {
        "gapped": (positions.with_gap(t, 3, 5), masks.causal_mask(n)),
        "fractional": (positions.with_gap(t, 3, 0.5), masks.causal_mask(n)),
        "isolated": (shared, masks.parallel_mask(labels, "isolated")),
        "visible": (shared, masks.parallel_mask(labels, "visible")),
    }
    names = list(layouts)
    ids4 = ids.expand(len(names), -1)
    pos4 = torch.cat([layouts[k][0] for k in names])  # (4, n)
    mask4 = torch.cat([layouts[k][1] for k in names])  # (4, 1, n, n)
    bool4 = masks.to_bool(mask4)
    core = DecodingCore(bundled)
    eager = core.full(ids4, Layout(pos4, mask4))  # (4, n, vocab)
    with torch.no_grad():
        raw_bool_eager = bundled.model(ids4, position_ids=pos4, attention_mask=bool4).logits
    with attn_implementation(bundled, "sdpa"):
        assert bundled.model.config._attn_implementation == "sdpa"
        sdpa = core.full(ids4, Layout(pos4, mask4))
        with torch.no_grad():
            raw_bool_sdpa = bundled.model(ids4, position_ids=pos4, attention_mask=bool4).logits
    assert bundled.model.config._attn_implementation == "eager"
    for r, name in enumerate(names):
        torch.testing.assert_close(sdpa[r], eager[r], atol=real_atol(bundled, eager[r]), rtol=0, msg=name)
        torch.testing.assert_close(sdpa[r].softmax(-1), eager[r].softmax(-1), atol=real_atol(bundled, 1.0),
                                   rtol=0, msg=name)
        torch.testing.assert_close(raw_bool_sdpa[r], eager[r], atol=real_atol(bundled, eager[r]), rtol=0,
                                   msg=name)  # SDPA reads bool
        assert (raw_bool_eager[r] - eager[r]).abs().max() > 1e-2, name  # eager adds it as 0/1: wrong
    # the guard converts it
    torch.testing.assert_close(core.full(ids4, Layout(pos4, bool4)), eager, atol=0, rtol=0)
    assert (eager[2, -3:] - eager[3, -3:]).abs().max() > 1e-3  # isolated != visible


def test_fractional_positions_on_the_bundled_model(bundled):
    ids = bundled.encode(PROMPT + TOKEN)
    t = ids.shape[1] - 1
    core = DecodingCore(bundled)
    places = (t + 4.0, t + 4.5, t + 5.0)
    batch = core.full(ids.expand(3, -1), Layout(torch.cat([positions.appended(t, p) for p in places])))[:, -1]
    at = dict(zip(places, batch, strict=True))
    with torch.no_grad():
        as_int = bundled.model(  # integer positions 0..t-1, t+4 in a batch of one
            ids, position_ids=positions.appended(t, t + 4).long(), attention_mask=masks.causal_mask(t + 1)
        ).logits[0, -1]
    torch.testing.assert_close(at[t + 4.0], as_int, atol=real_atol(bundled, as_int), rtol=0)  # batch 3 vs 1
    probs = {p: torch.softmax(v, -1) for p, v in at.items()}
    top3 = probs[t + 4.5].topk(3).indices
    for neighbour in (t + 4.0, t + 5.0):
        moved = (probs[t + 4.5][top3] - probs[neighbour][top3]).abs().max()
        assert 1e-3 < moved < 0.2, (neighbour, moved)
