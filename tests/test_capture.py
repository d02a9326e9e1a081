"""capture_attention vs output_attentions=True, on SDPA models, cleanup (also on error), passes, selection."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import AttentionRecord, capture_attention, load_model, masks, positions, span_mass
from tempo_lab.capture import attention_modules
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tests.helpers import assert_same

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooks(model: torch.nn.Module) -> list[tuple[str, str, object]]:
    """Every hook on every module: (module name, hook dict, hook)."""
    return [
        (name, attr, hook)
        for name, m in model.named_modules()
        for attr in HOOK_DICTS
        for hook in getattr(m, attr, {}).values()
    ]


def _hook_count(model: torch.nn.Module) -> int:
    return len(_hooks(model))


def _output_attentions(ids, pos, mask):
    """Reference weights from transformers' own output_attentions=True, on a *fresh* copy of the tiny model:
    transformers installs permanent output-capturing hooks the first time attentions are requested, and the
    session models must stay hook-free."""
    fresh = load_model("tiny-random")
    with torch.no_grad():
        return fresh.model(ids, position_ids=pos, attention_mask=mask, output_attentions=True).attentions


def _inputs(lm, text="Once upon a time, there", gap=4):
    ids = lm.encode(text)
    n = ids.shape[1]
    return ids, positions.with_gap(n - 1, 1, gap), masks.causal_mask(n, dtype=lm.dtype)


def test_capture_equals_output_attentions(tiny):
    ids, pos, mask = _inputs(tiny)
    reference = _output_attentions(ids, pos, mask)
    with torch.no_grad():
        with capture_attention(tiny.model) as rec:
            tiny.model(ids, position_ids=pos, attention_mask=mask)
    assert len(rec.passes) == 1 and rec.layers == [0, 1] and rec.heads is None
    assert len(rec.weights) == len(reference) == tiny.model.config.num_hidden_layers
    for got, ref in zip(rec.weights, reference, strict=True):
        assert got.shape == (1, tiny.model.config.num_attention_heads, ids.shape[1], ids.shape[1])
        assert_same(got, ref)


def test_capture_on_sdpa_model_records_and_restores(tiny_sdpa):
    ids, pos, mask = _inputs(tiny_sdpa)
    with torch.no_grad():
        before = tiny_sdpa.model(ids, position_ids=pos, attention_mask=mask).logits
        with capture_attention(tiny_sdpa.model) as rec:
            assert tiny_sdpa.model.config._attn_implementation == "eager"
            inside = tiny_sdpa.model(ids, position_ids=pos, attention_mask=mask).logits
        after = tiny_sdpa.model(ids, position_ids=pos, attention_mask=mask).logits
    reference = _output_attentions(ids, pos, mask)
    assert tiny_sdpa.model.config._attn_implementation == "sdpa"
    assert all(
        getattr(m, "config", tiny_sdpa.model.config)._attn_implementation == "sdpa"
        for m in attention_modules(tiny_sdpa.model)
    )
    assert _hook_count(tiny_sdpa.model) == 0
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert_same(inside, before)
    for w, ref in zip(rec.weights, reference, strict=True):
        assert_same(w.sum(-1), torch.ones(w.shape[:-1]))
        assert_same(w, ref)  # same weights as the eager twin


def test_no_hooks_left_and_hooks_present_inside(tiny):
    assert _hook_count(tiny.model) == 0
    with capture_attention(tiny.model, layers=[1]):
        assert [(name, attr) for name, attr, _ in _hooks(tiny.model)] == [
            ("model.layers.1.self_attn", "_forward_hooks")
        ]
    with capture_attention(tiny.model):
        assert _hook_count(tiny.model) == tiny.model.config.num_hidden_layers
    assert _hook_count(tiny.model) == 0


@pytest.mark.parametrize("fixture", ["tiny", "tiny_sdpa"])
def test_cleanup_on_error(fixture, request):
    lm = request.getfixturevalue(fixture)
    original = lm.model.config._attn_implementation
    ids, pos, mask = _inputs(lm)
    with pytest.raises(RuntimeError, match="boom"), capture_attention(lm.model) as rec:
        with torch.no_grad():
            lm.model(ids, position_ids=pos, attention_mask=mask)
        raise RuntimeError("boom")
    assert len(rec.passes) == 1
    assert _hook_count(lm.model) == 0
    assert lm.model.config._attn_implementation == original
    # an error raised by the model itself (bad mask shape) also cleans up
    with pytest.raises((RuntimeError, ValueError, IndexError)), capture_attention(lm.model):
        lm.model(ids, position_ids=pos, attention_mask=masks.causal_mask(2))
    assert _hook_count(lm.model) == 0
    assert lm.model.config._attn_implementation == original


def test_passes_recorded_in_order_with_cache(tiny):
    core = DecodingCore(tiny)
    ids = tiny.encode("Once upon a time, there was")
    n = ids.shape[1]
    t = n - 4
    pos = positions.with_gap(t, 4, 3)
    h = tiny.model.config.num_attention_heads
    with capture_attention(tiny.model) as rec:
        prefix = core.prefill(ids[:, :t])
        core.step(prefix.cache, ids[:, t : t + 1], Layout(pos[:, t : t + 1]))
        core.step(prefix.cache, ids[:, t + 1 :], Layout(pos[:, t + 1 :]))
    shapes = [tuple(p[0].shape) for p in rec.passes]
    assert shapes == [(1, h, t, t), (1, h, 1, t + 1), (1, h, 3, n)]
    assert all(len(p) == 2 for p in rec.passes)
    # each cached pass equals the matching rows of one uncached full pass
    with capture_attention(tiny.model) as full:
        core.full(ids, Layout(pos))
    for layer in range(2):
        assert_same(rec.passes[0][layer], full.weights[layer][:, :, :t, :t])
        assert_same(rec.passes[1][layer], full.weights[layer][:, :, t : t + 1, : t + 1])
        assert_same(rec.passes[2][layer], full.weights[layer][:, :, t + 1 :])
    assert torch.equal(rec.stacked(1), torch.stack(rec.passes[1]))
    assert rec.weights is rec.passes[-1]


def test_layer_and_head_selection_and_storage_dtype(tiny):
    ids, pos, mask = _inputs(tiny)
    with torch.no_grad():
        with capture_attention(tiny.model) as everything:
            tiny.model(ids, position_ids=pos, attention_mask=mask)
        with capture_attention(tiny.model, layers=[-1], heads=[0, 2], dtype=torch.float16) as some:
            tiny.model(ids, position_ids=pos, attention_mask=mask)
    assert some.layers == [1] and some.heads == [0, 2]
    assert len(some.weights) == 1
    w = some.weights[0]
    assert w.dtype == torch.float16 and w.shape[1] == 2
    assert torch.equal(w, everything.weights[1][:, [0, 2]].to(torch.float16))  # stored rounded, nothing else
    assert everything.weights[0].dtype == tiny.dtype


def test_selection_out_of_range(tiny):
    with (
        pytest.raises(IndexError, match="layer index 2 is out of range for 2 layers"),
        capture_attention(tiny.model, layers=[2]),
    ):
        pass
    with (
        pytest.raises(IndexError, match="head index -5 is out of range for 4 heads"),
        capture_attention(tiny.model, heads=[-5]),
    ):
        pass
    assert _hook_count(tiny.model) == 0


def test_empty_record_says_so(tiny):
    with capture_attention(tiny.model) as rec:
        pass
    with pytest.raises(RuntimeError, match="no forward pass was recorded"):
        rec.weights  # noqa: B018


def test_span_mass():
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(3, 2, 4, 5, 7), dim=-1)  # (layers, batch, heads, q, kv)
    manual = w[..., -1, 1] + w[..., -1, 2] + w[..., -1, 4]
    assert_same(span_mass(w, [1, 2, 4]), manual)
    assert_same(span_mass(w, slice(0, 3), query=2), w[..., 2, 0] + w[..., 2, 1] + w[..., 2, 2])
    assert_same(span_mass(w, slice(None)), torch.ones(3, 2, 4))
    rec = AttentionRecord(layers=[0, 1, 2], heads=None, passes=[list(w)])
    assert_same(rec.mass([1, 2, 4]), manual)
    assert rec.mass(slice(0, 2)).shape == (3, 2, 4)


def test_hooks_of_others_are_kept():
    """Hooks that were there before (here transformers' own output-capturing hooks) stay as they were."""
    lm = load_model("tiny-random")
    ids, pos, mask = _inputs(lm)
    with torch.no_grad():
        lm.model(ids, output_attentions=True)
    before = _hooks(lm.model)
    assert before  # transformers did install some
    with capture_attention(lm.model) as rec, torch.no_grad():
        lm.model(ids, position_ids=pos, attention_mask=mask)
    assert _hooks(lm.model) == before
    assert len(rec.passes) == 1
