"""tempo_lab layouts inside an nnsight trace (:mod:`tempo_lab.interop`): every row of a batched trace equals
tempo_lab's own forward of its layout, a head-patching sweep written as nnsight edits equals
:func:`tempo_lab.interventions.patch` site by site, and two invokes of different lengths (which nnsight
left-pads into one batch, deriving its own positions: nnsight #672 was a bug of that step) give each row its
unpadded result (Llama, Qwen2 with grouped queries, Gemma 2 with a sliding window of 4, whose per-layer-type
masks nnsight's batching cannot carry itself)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from tempo_lab.interop import laid_out, wrap
from tempo_lab.interventions import logit_diff, patch
from tempo_lab.layout import Layout
from tests.helpers import assert_same
from tests.interop.cases import LAYOUTS, N, forward, ids, needs

needs("nnsight", "nnsight")


def test_each_row_of_a_trace_is_tempo_labs_forward_of_its_layout(lm):
    layouts = list(LAYOUTS.values())
    model = wrap(lm)
    with laid_out(lm, *layouts), model.trace(ids().expand(len(layouts), -1)):
        logits = model.output.logits.save()
    want = forward(lm, ids(), *layouts)  # tempo_lab's own forward of the same batch
    for row, name in enumerate(LAYOUTS):
        assert_same(logits[row], want[row], msg=name)
    # without laid_out, nnsight runs the plain contiguous layout: the gapped row differs
    with model.trace(ids()):
        plain = model.output.logits.save()
    assert (plain[0] - logits[0]).abs().max() > 1e-3


def test_two_invokes_of_different_lengths_give_each_row_its_unpadded_result(lm):
    short, long = LAYOUTS["moved"], Layout.of([0, 1, 2, 9, 10])  # 9 and 5 tokens
    a, b = ids(), ids(5, seed=4)
    model = wrap(lm)
    with laid_out(lm, long, short), model.trace() as tracer:
        with tracer.invoke(b):  # nnsight pads this row on the left to the batch's 9 slots
            padded = model.output.logits.save()
        with tracer.invoke(a):
            whole = model.output.logits.save()
    assert_same(padded[0, -5:], forward(lm, b, long)[0])
    assert_same(whole[0], forward(lm, a, short)[0])


def test_a_head_patching_sweep_written_in_nnsight_equals_patch(lm):
    clean, corrupt = Layout.contiguous(N), LAYOUTS["moved"]
    metric = logit_diff(lm, 5, 7)
    result = patch(lm, ids(), clean, corrupt, metric, kinds=("head",), slots=[N - 2, N - 1])
    model = wrap(lm)
    head_dim = lm.model.config.hidden_size // lm.model.config.num_attention_heads
    head_dim = getattr(lm.model.config, "head_dim", None) or head_dim
    checked = 0
    for site in result.frame.itertuples():
        lo = site.head * head_dim
        with laid_out(lm, clean, corrupt), model.trace(ids().expand(2, -1)):
            heads = model.model.layers[site.layer].self_attn.o_proj.input  # (2, N, heads x head_dim)
            heads[1, site.slot, lo : lo + head_dim] = heads[0, site.slot, lo : lo + head_dim]
            logits = model.output.logits.save()
        value = float(metric(logits[1:, -1].detach()))
        assert value == pytest.approx(site.metric, rel=1e-5, abs=1e-5), site
        checked += 1
    assert checked == lm.model.config.num_hidden_layers * lm.model.config.num_attention_heads * 2
    assert result.frame.effect.abs().max() > 1e-3  # heads matter: a hundred times the tolerance


def test_bad_input_is_refused(lm):
    with pytest.raises(ValueError, match="at least one layout"), laid_out(lm):
        pass
    with (
        laid_out(lm, LAYOUTS["gapped"]),
        pytest.raises(ValueError, match=r"2 row\(s\) of 9 tokens; the layouts lay out 1"),
    ):
        lm.model(input_ids=ids().expand(2, -1))
    with (
        pytest.raises(ValueError, match="position"),
        laid_out(lm, Layout.of(list(range(N - 1)) + [10_000_000])),
    ):
        pass
    right = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0, 0], [1] * N])  # padding on the right
    with (
        laid_out(lm, Layout.contiguous(4), Layout.contiguous(N)),
        pytest.raises(ValueError, match="pads its rows otherwise"),
    ):
        lm.model(input_ids=ids().expand(2, -1), attention_mask=right)
    cache = DynamicCache(config=lm.model.config)
    lm.model(input_ids=ids()[:, :4], cache=cache)
    with laid_out(lm, Layout.contiguous(5)), pytest.raises(ValueError, match="extends a cache"):
        lm.model(input_ids=ids()[:, 4:], cache=cache)
    with pytest.raises(TypeError, match="LoadedModel the TransformersModel wraps"), laid_out(wrap(lm)):
        pass
