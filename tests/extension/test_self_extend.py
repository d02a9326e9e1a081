"""Self-Extend at inference (:mod:`tempo_lab.extension.self_extend`) against a hand-written forward that
computes both score matrices (neighbour and grouped positions) and merges them per (query, key) pair with
``torch.where`` before one softmax (:func:`tests.interventions.reference.hand_rotated`; Llama, Qwen2 with
grouped queries, Gemma 2 with its soft-capping and a sliding layer), through the decoding core's uncached
pass, its cached steps (the retroactive generator) and a batch of two layouts; with a window past the
sequence it is the plain model."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.capture import capture_attention
from tempo_lab.extension import beyond_context, grouped_positions, self_extended
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.interventions import PositionEdit, intervene
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import EXACT, assert_same
from tests.interventions.reference import hand_rotated

PROMPT = "Once upon a time"  # 16 byte tokens
WINDOW, GROUP = 4, 3


def layout(n: int) -> torch.Tensor:
    """``(n,)`` positions: contiguous, then a gap of 5.5 before the last four slots."""
    p = torch.arange(n, dtype=torch.float32)
    p[-4:] += 5.5
    return p


def hand(lm: LoadedModel, ids: torch.Tensor, p: torch.Tensor, window: int, group: int) -> torch.Tensor:
    """The hand-written two-matrix Self-Extend forward's logits ``(n, vocab)`` at positions ``p`` ``(n,)``;
    sliding layers (Gemma 2's layer 0) are left as they are, as :func:`self_extended` documents."""
    config = lm.model.config
    hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    shape = (config.num_hidden_layers, config.num_attention_heads, len(p), hd // 2)

    def per_band(x: torch.Tensor) -> torch.Tensor:
        return x[None, None, :, None].expand(shape)

    q_group, k_group = grouped_positions(p, p, window, group)
    near = (p[:, None] - p[None, :] < window).repeat(config.num_hidden_layers, 1, 1)  # (layers, n, n)
    for i, kind in enumerate(getattr(config, "layer_types", None) or []):
        if kind == "sliding_attention":  # a sliding layer is attended as is: every pair its neighbour
            near[i] = True
    return hand_rotated(lm, ids, per_band(p), per_band(p), (per_band(q_group), per_band(k_group), near))


def forward(lm: LoadedModel, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The decoding core's uncached pass: logits ``(batch, n, vocab)`` for positions ``(batch, n)``."""
    n = ids.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    return DecodingCore(lm).forward(ids, Layout(positions, causal))


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma2"])
def lm(request) -> LoadedModel:
    """The tiny Llama has grouped-query attention (4 heads, 2 key heads); Gemma 2 soft-caps its scores and
    logits and slides a window of 4 slots in layer 0 (the window of Self-Extend, 4, is not below it), its
    query and key projections scaled by 8 so that grouping far pairs moves its logits past rounding."""
    if request.param != "gemma2":
        return tiny_random(request.param)
    lm = tiny_random("gemma2", **MATRIX["gemma2"])
    with torch.no_grad():
        for layer in lm.model.base_model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return lm


def test_self_extend_equals_the_two_matrix_reference(lm):
    ids = lm.encode(PROMPT)
    p = layout(ids.shape[1])
    want = hand(lm, ids, p, WINDOW, GROUP)
    with self_extended(lm, window=WINDOW, group=GROUP):
        got = forward(lm, ids, p[None])[0]
    assert_same(got, want)
    plain = forward(lm, ids, p[None])[0]
    assert (got - plain).abs().max() > 100 * EXACT  # far pairs are grouped: the logits move


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_a_causal_layout_in_blocks_of_any_size_equals_the_reference(lm, chunk):
    """A causal layout reaches the attention with no mask at all (the 16k path: SDPA's mask function gives
    none) and is attended in blocks of ``chunk`` query rows, each over the keys up to its last slot."""
    ids = lm.encode(PROMPT)
    p = layout(ids.shape[1])
    with self_extended(lm, window=WINDOW, group=GROUP, chunk=chunk):
        got = DecodingCore(lm).forward(ids, Layout(p[None]))[0]
    assert_same(got, hand(lm, ids, p, WINDOW, GROUP))


def test_the_fused_pass_equals_the_pass_that_returns_its_probabilities(lm):
    """Without a capture a causal pass attends through SDPA's fused kernel, grouped and plain layouts joined
    along the head dimension; inside a capture it computes the merged scores and returns the probabilities.
    The two agree, and the captured probabilities are the reference's softmax rows."""
    ids = lm.encode(PROMPT)
    p = layout(ids.shape[1])
    with self_extended(lm, window=WINDOW, group=GROUP, chunk=3):
        fused = DecodingCore(lm).forward(ids, Layout(p[None]))[0]
        with capture_attention(lm.model) as record:
            eager = DecodingCore(lm).forward(ids, Layout(p[None]))[0]
    assert_same(fused, eager)
    weights = record.stacked()  # (layers, batch, heads, q, kv)
    assert torch.allclose(weights.sum(-1), torch.ones((), dtype=weights.dtype))
    assert (weights[..., 0, 1:] == 0).all()  # causal: the first query sees itself only


def test_cached_steps_equal_the_reference_at_every_position(lm):
    """The retroactive generator (one prefill, one cached batched step at gapped and fractional positions,
    past the trained context too) gives each position the reference's distribution."""
    ids = lm.encode(PROMPT + "!")
    n = ids.shape[1]
    gaps = [0.0, 2.5, 9.0, 600.25]
    with self_extended(lm, window=WINDOW, group=GROUP):
        got = RetroactivePositionGenerator(lm).explore(PROMPT, gaps=gaps, token="!")
    for row, gap in enumerate(gaps):
        p = torch.arange(n, dtype=torch.float32)
        p[-1] += gap
        want = torch.softmax(hand(lm, ids, p, WINDOW, GROUP)[-1], -1)
        assert_same(got.probs[row], want)


def test_a_batch_of_two_layouts_gives_each_row_its_own_result(lm):
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    rows = torch.stack([layout(n), torch.arange(n, dtype=torch.float32) * 1.5])
    with self_extended(lm, window=WINDOW, group=GROUP):
        both = forward(lm, ids.expand(2, -1), rows)
        alone = [forward(lm, ids, row[None])[0] for row in rows]
    for k in range(2):
        assert_same(both[k], alone[k])


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2", "gemma3_text"])
def test_a_window_past_the_sequence_is_the_plain_model_bit_for_bit(family):
    """Every pair is a neighbour, so the merged scores are the model's own; Gemma 2's soft-capping and the
    sliding layers (window 4, left alone) included."""
    lm = tiny_random(family, **MATRIX[family])
    ids = lm.encode(PROMPT)
    p = layout(ids.shape[1])[None]
    with beyond_context(lm):
        plain = forward(lm, ids, p)
    with self_extended(lm, window=64, group=GROUP):
        assert torch.equal(forward(lm, ids, p), plain)


def test_the_block_leaves_the_model_as_it_found_it(tiny):
    ids = tiny.encode(PROMPT)
    p = layout(ids.shape[1])[None]
    before = forward(tiny, ids, p)
    with pytest.raises(RuntimeError, match="inside"), self_extended(tiny, window=WINDOW, group=GROUP):
        raise RuntimeError("inside")
    assert tiny.model.config._attn_implementation == "eager" and tiny.max_positions == 512
    assert not tiny.model.base_model._forward_pre_hooks
    assert torch.equal(forward(tiny, ids, p), before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 4, "group": 0}, r"group must be an integer >= 1, got 0"),
        ({"window": 0, "group": 2}, r"window must be an integer >= 1, got 0"),
        ({"window": 4, "group": 2.5}, r"group must be an integer >= 1, got 2\.5"),
        ({"window": 600, "group": 2}, r"window = 600 is past the model's trained context \(512\)"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message), self_extended(tiny, **kwargs):
        pass


def test_bad_models_and_nesting_are_refused(tiny, tiny_gpt2):
    with pytest.raises(ValueError, match="no rotary position embedding"), self_extended(tiny_gpt2, 4, 2):
        pass
    gemma2 = tiny_random("gemma2", **MATRIX["gemma2"])  # sliding window 4
    with pytest.raises(ValueError, match=r"window = 2 is below the sliding window \(4\) of layers \[0\]"):
        with self_extended(gemma2, window=2, group=2):
            pass
    with self_extended(tiny, window=WINDOW, group=GROUP):
        with pytest.raises(ValueError, match="does not nest"), self_extended(tiny, WINDOW, GROUP):
            pass
        edit = PositionEdit(torch.zeros(16), layers=[0], heads=[1])
        with pytest.raises(ValueError, match="per-head position edits .* cannot run inside it"):
            with intervene(tiny, edit):
                pass
