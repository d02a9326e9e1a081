"""Additive masks: content vs brute force, parallel layouts, the bool guard, eager == SDPA, isolation."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import capture_attention, masks, positions
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tests.helpers import assert_same


def _brute_causal(q: int, kv: int) -> torch.Tensor:
    allowed = torch.zeros(q, kv, dtype=torch.bool)
    for i in range(q):
        slot = kv - q + i
        for j in range(kv):
            allowed[i, j] = j <= slot
    return allowed


def _brute_parallel(labels: list[int], mode: str, q: int) -> torch.Tensor:
    kv = len(labels)
    allowed = _brute_causal(q, kv)
    if mode == "isolated":
        for i in range(q):
            slot = kv - q + i
            for j in range(kv):
                if j != slot and labels[slot] >= 0 and labels[j] == labels[slot]:
                    allowed[i, j] = False
    return allowed


@pytest.mark.parametrize("q, kv", [(1, 1), (4, 4), (1, 6), (3, 7), (5, None)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_mask_matches_brute_force(q, kv, dtype):
    m = masks.causal_mask(q, kv, dtype=dtype, batch=2)
    kv_len = q if kv is None else kv
    assert m.shape == (2, 1, q, kv_len) and m.dtype == dtype
    allowed = _brute_causal(q, kv_len)
    for b in range(2):
        assert torch.equal(m[b, 0] == 0, allowed)
        assert torch.all(m[b, 0][~allowed] == torch.finfo(dtype).min)


def test_causal_mask_refuses_bad_lengths():
    with pytest.raises(ValueError, match="need 1 <= q_len <= kv_len, got q_len=0"):
        masks.causal_mask(0)
    with pytest.raises(ValueError, match="q_len=4, kv_len=3"):
        masks.causal_mask(4, 3)


def test_set_labels():
    assert masks.set_labels([2, 1], 3).tolist() == [-1, -1, -1, 0, 0, 1]
    assert masks.set_labels([1, 1]).tolist() == [0, 1]


@pytest.mark.parametrize("mode", ["isolated", "visible"])
@pytest.mark.parametrize("q", [None, 1, 3, 6])
def test_parallel_mask_matches_brute_force(mode, q):
    labels = masks.set_labels([3, 1, 2], prefix_len=2)  # 8 slots
    m = masks.parallel_mask(labels, mode, q)
    q_len = len(labels) if q is None else q
    assert m.shape == (1, 1, q_len, len(labels))
    assert torch.equal(masks.to_bool(m[0, 0]), _brute_parallel(labels.tolist(), mode, q_len))


def test_parallel_mask_visible_is_causal_and_isolated_differs():
    labels = masks.set_labels([3], prefix_len=2)
    assert torch.equal(masks.parallel_mask(labels, "visible"), masks.causal_mask(5))
    assert not torch.equal(masks.parallel_mask(labels, "isolated"), masks.causal_mask(5))


def test_parallel_mask_batch_rows_are_independent():
    rows = [masks.set_labels([2, 2], 1), masks.set_labels([1, 3], 1)]
    batched = masks.parallel_mask(torch.stack(rows), "isolated", q_len=3)
    assert batched.shape == (2, 1, 3, 5)
    for b, labels in enumerate(rows):
        assert torch.equal(batched[b], masks.parallel_mask(labels, "isolated", q_len=3)[0])
    assert not torch.equal(batched[0], batched[1])


def test_parallel_mask_refuses_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of 'isolated', 'visible'; got 'hidden'"):
        masks.parallel_mask(masks.set_labels([2]), "hidden")


def test_bool_additive_round_trip():
    allowed = _brute_parallel(masks.set_labels([2, 3], 2).tolist(), "isolated", 4)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        additive = masks.to_additive(allowed, dtype)
        assert additive.dtype == dtype
        assert torch.equal(masks.to_bool(additive), allowed)
        assert set(additive.unique().tolist()) == {0.0, torch.finfo(dtype).min}
    with pytest.raises(TypeError, match="expected a bool mask, got torch.float32"):
        masks.to_additive(allowed.float())
    with pytest.raises(TypeError, match="expected a float additive mask, got torch.bool"):
        masks.to_bool(allowed)


def test_ensure_additive_guard():
    m = masks.causal_mask(3, 5)
    assert masks.ensure_additive(m, torch.float32) is m
    assert torch.equal(masks.ensure_additive(masks.to_bool(m), torch.float32), m)
    half = masks.ensure_additive(m, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.equal(masks.to_bool(half), masks.to_bool(m))
    with pytest.raises(TypeError, match="boolean 4D mask would be added as 0/1"):
        masks.ensure_additive(masks.to_bool(m), torch.float32, convert_bool=False)
    with pytest.raises(TypeError, match="must be bool or float, got torch.int64"):
        masks.ensure_additive(m.long(), torch.float32)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, q_len, kv_len\), got \(3, 5\)"):
        masks.ensure_additive(m[0, 0], torch.float32)
    with pytest.raises(ValueError, match=r"got \(1, 2, 3, 5\)"):
        masks.ensure_additive(m.expand(1, 2, 3, 5), torch.float32)


def test_decoding_core_refuses_a_mask_of_the_wrong_shape(tiny):
    core = DecodingCore(tiny)
    ids = tiny.encode("abcd")
    with pytest.raises(ValueError, match=r"mask has shape \(1, 1, 3, 3\); for positions of shape \(1, 4\)"):
        core.full(ids, Layout(positions.contiguous(4), masks.causal_mask(3)))
    prefix = core.prefill(ids)
    with pytest.raises(ValueError, match=r"mask sees 3 cached slots before its 1 queries; the cache holds 4"):
        core.step(prefix.cache, ids[:, :1], Layout(positions.contiguous(1, 4), masks.causal_mask(1, 4)))
    with pytest.raises(ValueError, match=r"mask has shape \(3, 1, 4, 4\); for positions of shape \(1, 4\)"):
        core.full(ids.expand(2, -1), Layout(positions.contiguous(4), masks.causal_mask(4, batch=3)))


# --- layouts on the model ------------------------------------------------------------------------------

PROMPT = "The cat"


def _layouts(lm):
    """(name, ids (1, n), positions (1, n), additive mask (1, 1, n, n)): gapped, fractional, parallel."""
    ids = lm.encode(PROMPT + " sat on")
    n = ids.shape[1]
    t = n - 3
    dtype = lm.dtype
    labels = masks.set_labels([2, 1], prefix_len=t)
    return [
        ("gapped", ids, positions.with_gap(t, 3, 5), masks.causal_mask(n, dtype=dtype)),
        ("fractional", ids, positions.with_gap(t, 3, 0.5), masks.causal_mask(n, dtype=dtype)),
        (
            "isolated",
            ids,
            torch.cat([positions.contiguous(t), positions.shared(t, [2, 1])], 1),
            masks.parallel_mask(labels, "isolated", dtype=dtype),
        ),
        (
            "visible",
            ids,
            torch.cat([positions.contiguous(t), positions.shared(t, [2, 1])], 1),
            masks.parallel_mask(labels, "visible", dtype=dtype),
        ),
    ]


def test_eager_and_sdpa_agree_on_every_layout(tiny, tiny_sdpa):
    eager, sdpa = DecodingCore(tiny), DecodingCore(tiny_sdpa)
    assert tiny_sdpa.model.config._attn_implementation == "sdpa"
    for name, ids, pos, mask in _layouts(tiny):
        e, s = eager.full(ids, Layout(pos, mask)), sdpa.full(ids, Layout(pos, mask))
        assert_same(s, e, msg=f"layout {name}")
        # cached: prefill the prompt, then the 3 new tokens in one step with the matching mask rows
        t = ids.shape[1] - 3
        for core, full in ((eager, e), (sdpa, s)):
            prefix = core.prefill(ids[:, :t])
            stepped = core.step(prefix.cache, ids[:, t:], Layout(pos[:, t:], mask[:, :, t:, :]))
            assert_same(stepped, full[:, t:], msg=f"layout {name} cached")


def test_layouts_really_differ(tiny):
    """The layouts above are not all the same computation (so agreeing on them means something)."""
    core = DecodingCore(tiny)
    outs = {name: core.full(ids, Layout(pos, mask))[0, -1] for name, ids, pos, mask in _layouts(tiny)}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (outs[a] - outs[b]).abs().max() > 1e-4, (a, b)


def test_bool_mask_through_the_guard_equals_its_additive_twin(tiny):
    core = DecodingCore(tiny)
    for name, ids, pos, mask in _layouts(tiny):
        as_bool = masks.to_bool(mask)
        assert as_bool.dtype == torch.bool
        torch.testing.assert_close(
            core.full(ids, Layout(pos, as_bool)), core.full(ids, Layout(pos, mask)), atol=0, rtol=0, msg=name
        )
        t = ids.shape[1] - 3
        prefix = core.prefill(ids[:, :t])
        twin = core.prefill(ids[:, :t])
        a = core.step(prefix.cache, ids[:, t:], Layout(pos[:, t:], as_bool[:, :, t:]))
        b = core.step(twin.cache, ids[:, t:], Layout(pos[:, t:], mask[:, :, t:]))
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=f"{name} cached")


def test_raw_bool_mask_under_eager_is_silently_wrong(tiny, tiny_sdpa):
    """Why the guard exists: eager adds a bool mask as 0/1, so it masks nothing; SDPA reads it right."""
    ids = tiny.encode(PROMPT + " sat on")
    n = ids.shape[1]
    additive = masks.causal_mask(n)
    as_bool = masks.to_bool(additive)
    with torch.no_grad():
        right = tiny.model(ids, attention_mask=additive).logits
        wrong = tiny.model(ids, attention_mask=as_bool).logits
        sdpa_bool = tiny_sdpa.model(ids, attention_mask=as_bool).logits
    assert (wrong[0, :-1] - right[0, :-1]).abs().max() > 1e-2  # earlier rows see future tokens
    assert_same(sdpa_bool, right)
    # the leak: under the raw bool mask, the first row changes when a *later* token changes
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % tiny.model.config.vocab_size
    with torch.no_grad():
        wrong2 = tiny.model(changed, attention_mask=as_bool).logits
        right2 = tiny.model(changed, attention_mask=additive).logits
    assert (wrong2[0, 0] - wrong[0, 0]).abs().max() > 1e-4
    torch.testing.assert_close(right2[0, 0], right[0, 0], atol=0, rtol=0)


def _member_attention(lm, mode):
    """Attention of each member of a 3-member set (and one later token) on the set's slots, every layer."""
    ids = lm.encode("The cat ran, sat")
    n = ids.shape[1]
    t = n - 4
    labels = masks.set_labels([3, 1], prefix_len=t)
    pos = torch.cat([positions.contiguous(t), positions.shared(t, [3, 1])], 1)
    core = DecodingCore(lm)
    prefix = core.prefill(ids[:, :t])
    mask = masks.parallel_mask(labels, mode, q_len=4, dtype=lm.dtype)
    with capture_attention(lm.model) as rec:
        core.step(prefix.cache, ids[:, t:], Layout(pos[:, t:], mask))
    weights = rec.stacked()  # (layers, 1, heads, q=4, kv=n)
    members = list(range(t, t + 3))
    return weights, members


def test_isolated_members_never_see_their_siblings(tiny):
    weights, members = _member_attention(tiny, "isolated")
    for qi, slot in enumerate(members):
        siblings = [m for m in members if m != slot]
        assert torch.all(weights[..., qi, siblings] == 0)
        assert torch.all(weights[..., qi, slot] > 0)  # each member sees itself
        assert torch.all(weights[..., qi, : members[0]].sum(-1) > 0)  # and the prompt
    assert torch.all(weights[..., 3, members].sum(-1) > 0)  # the token after the set sees all members


def test_visible_members_see_earlier_siblings(tiny):
    weights, members = _member_attention(tiny, "visible")
    assert torch.all(weights[..., 0, members[1:]] == 0)  # causal: the first member cannot see later ones
    for qi in (1, 2):
        assert torch.all(weights[..., qi, members[:qi]] > 0)
