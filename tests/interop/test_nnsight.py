"""tempo_lab layouts inside an nnsight trace (:mod:`tempo_lab.interop`): every row of a batched trace equals
tempo_lab's own forward of its layout, and a head-patching sweep written as nnsight edits equals
:func:`tempo_lab.interventions.patch` site by site (Llama, Qwen2 with grouped queries, Gemma 2 with a
sliding window of 4, whose per-layer-type masks nnsight's batching cannot carry itself)."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import masks
from tempo_lab.generators.core import DecodingCore
from tempo_lab.interop import laid_out, wrap
from tempo_lab.interventions import Layout, logit_diff, patch
from tempo_lab.tiny import tiny_random

N = 9
SET = torch.tensor([-1, -1, -1, -1, 0, 0, 0, -1, -1])
SHARED = [0, 1, 2, 3, 4, 4, 4, 5, 6]
LAYOUTS = {
    "gapped": Layout.of([0, 1, 2, 3, 14, 15, 16, 17, 18]),
    "fractional": Layout.of([0, 1, 1.5, 2.25, 3, 4.75, 5, 6, 7.5]),
    "set isolated": Layout.of(SHARED, masks.parallel_allowed(SET, "isolated")[:, None]),
    "set visible": Layout.of(SHARED, masks.parallel_allowed(SET, "visible")[:, None]),
    "moved": Layout.moved(N, slot=N - 1, by=20.0),
}


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma2"])
def lm(request):
    """A tiny model whose attention is sharp enough that positions move its logits well past rounding: its
    query and key projections scaled by 8."""
    made = tiny_random(request.param, seed=2, **({"sliding_window": 4} if request.param == "gemma2" else {}))
    with torch.no_grad():
        for layer in made.model.base_model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return made


def ids() -> torch.Tensor:
    return torch.randint(0, 200, (1, N), generator=torch.Generator().manual_seed(3))


def test_each_row_of_a_trace_is_tempo_labs_forward_of_its_layout(lm):
    core, layouts = DecodingCore(lm), list(LAYOUTS.values())
    model = wrap(lm)
    with laid_out(lm, *layouts), model.trace(ids().expand(len(layouts), -1)):
        logits = model.output.logits.save()
    # tempo_lab's own forward of the same batch: row i laid out by layout i
    positions = torch.cat([layout.positions for layout in layouts])
    mask = torch.cat([layout.full_mask(lm.dtype) for layout in layouts])
    want = core.forward(ids().expand(len(layouts), -1), positions, mask, None)
    for row, name in enumerate(LAYOUTS):
        torch.testing.assert_close(logits[row], want[row], atol=1e-5, rtol=0, msg=name)
    # without laid_out, nnsight runs the plain contiguous layout: the gapped row differs
    with model.trace(ids()):
        plain = model.output.logits.save()
    assert (plain[0] - logits[0]).abs().max() > 1e-3


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
        pytest.raises(ValueError, match=r"different lengths \[9, 4\]"),
        laid_out(lm, LAYOUTS["gapped"], Layout.contiguous(4)),
    ):
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
