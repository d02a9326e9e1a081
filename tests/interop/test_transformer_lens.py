"""tempo_lab layouts inside a TransformerLens ``TransformerBridge`` (:func:`tempo_lab.interop.bridge`): every
row of ``run_with_cache`` equals tempo_lab's own forward of its layout, the bridge's ``hook_pattern`` is the
attention tempo_lab captures for the layout, a head-patching sweep written as ``hook_z`` edits equals
:func:`tempo_lab.interventions.patch` site by site, and a left-padded batch gives each row its unpadded result
whatever positions the bridge derives from the padding mask (TransformerLens #1609 was a bug of that step)
(Llama, Qwen2 with grouped queries, Gemma 2 with a sliding window of 4)."""

from __future__ import annotations

import pytest

from tempo_lab.capture import capture_attention
from tempo_lab.interop import bridge, laid_out
from tempo_lab.interventions import logit_diff, patch
from tempo_lab.layout import Layout
from tests.helpers import assert_same
from tests.interop.cases import LAYOUTS, N, forward, ids, left_padded, needs, sharp_tiny

needs("transformer_lens", "transformer-lens")


@pytest.fixture(scope="module")
def tl(lm):
    return bridge(lm)


def test_each_row_of_run_with_cache_is_tempo_labs_forward_of_its_layout(lm, tl):
    layouts = list(LAYOUTS.values())
    with laid_out(tl, *layouts):
        logits, cache = tl.run_with_cache(ids().expand(len(layouts), -1))
    want = forward(lm, ids(), *layouts)
    for row, name in enumerate(LAYOUTS):
        assert_same(logits[row].detach(), want[row], msg=name)
    assert (tl(ids())[0] - logits[0]).abs().max() > 1e-3  # the bridge alone runs positions 0..N-1
    # its hooks saw the layout: the pattern is the attention tempo_lab captures for the same batch
    with capture_attention(lm.model) as record:
        forward(lm, ids(), *layouts)
    for layer in range(lm.model.config.num_hidden_layers):
        assert_same(cache[f"blocks.{layer}.attn.hook_pattern"], record.passes[0][layer])


def test_a_left_padded_batch_gives_each_row_its_unpadded_result(lm, tl):
    short, long = Layout.of([0, 1, 2, 9, 10]), LAYOUTS["set visible"]
    a, b = ids(5, seed=4), ids()
    tokens, mask = left_padded(lm.tokenizer.pad_token_id or 0, a, b)
    with laid_out(tl, short, long):
        logits = tl(tokens, attention_mask=mask)  # the bridge derives positions from the mask; replaced
    assert_same(logits[0, -5:].detach(), forward(lm, a, short)[0])
    assert_same(logits[1].detach(), forward(lm, b, long)[0])


def test_a_head_patching_sweep_written_as_hook_z_edits_equals_patch(lm, tl):
    clean, corrupt = Layout.contiguous(N), LAYOUTS["moved"]
    metric = logit_diff(lm, 5, 7)
    result = patch(lm, ids(), clean, corrupt, metric, kinds=("head",), slots=[N - 2, N - 1])
    for site in result.frame.itertuples():

        def clean_into_corrupt(z, hook, site=site):  # z: (2, N, heads, head_dim); row 0 clean, row 1 corrupt
            z[1, site.slot, site.head] = z[0, site.slot, site.head]
            return z

        with laid_out(tl, clean, corrupt):
            logits = tl.run_with_hooks(
                ids().expand(2, -1), fwd_hooks=[(f"blocks.{site.layer}.attn.hook_z", clean_into_corrupt)]
            )
        assert float(metric(logits[1:, -1].detach())) == pytest.approx(site.metric, rel=1e-5, abs=1e-5), site
    assert len(result.frame) == lm.model.config.num_hidden_layers * lm.model.config.num_attention_heads * 2
    assert result.frame.effect.abs().max() > 1e-3  # heads matter: a hundred times the tolerance


def test_the_legacy_hooked_transformer_is_refused_and_the_model_stays_as_it_was(lm, tl):
    class HookedTransformer:  # TransformerLens < 4 (4.0 removed the class): a model of its own, no positions
        pass

    with (
        pytest.raises(TypeError, match="takes no position_ids"),
        laid_out(HookedTransformer(), LAYOUTS["moved"]),
    ):
        pass
    # the bridge runs a copy: lm's modules are still transformers' own, its logits the same as a fresh model's
    assert not any(type(m).__module__.startswith("transformer_lens") for m in lm.model.modules())
    assert_same(lm.model(ids()).logits, sharp_tiny(lm.model.config.model_type).model(ids()).logits)
