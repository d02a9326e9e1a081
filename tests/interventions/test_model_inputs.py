"""``Layout.model_inputs``: the keyword arguments that make a plain ``model(**kwargs)`` call compute a layout,
checked against the model's decoder layers called one by one with hand-built masks (:mod:`reference`), on a
gapped, a fractional, a moved and a TEMPO-set layout (members isolated and visible), for Llama, Qwen2 (grouped
queries) and Gemma 2 (sliding window 4, soft-capping)."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import masks
from tempo_lab.layout import Layout
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same
from tests.interventions.reference import layer_by_layer

N = 9
SET = torch.tensor([-1, -1, -1, -1, 0, 0, 0, -1, -1])  # slots 4-6: one TEMPO set sharing position 4
SHARED = [0, 1, 2, 3, 4, 4, 4, 5, 6]


def layouts() -> dict[str, tuple[Layout, torch.Tensor | None]]:
    """name -> (layout, its allowed mask (N, N) for the reference; None: causal)."""
    isolated = masks.parallel_allowed(SET, "isolated")[0]
    visible = masks.parallel_allowed(SET, "visible")[0]
    return {
        "gapped": (Layout.of([0, 1, 2, 3, 14, 15, 16, 17, 18]), None),
        "fractional": (Layout.of([0, 1, 1.5, 2.25, 3, 4.75, 5, 6, 7.5]), None),
        "moved": (Layout.gapped(N, before=N - 1, gap=20.0), None),
        "set isolated": (Layout.of(SHARED, isolated[None, None]), isolated),
        "set visible": (Layout.of(SHARED, visible[None, None]), visible),
    }


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma2"])
def lm(request):
    return tiny_random(request.param, seed=2, **({"sliding_window": 4} if request.param == "gemma2" else {}))


@pytest.mark.parametrize("name", list(layouts()))
def test_a_plain_model_call_with_the_layouts_inputs_is_the_layer_by_layer_forward(lm, name):
    layout, allowed = layouts()[name]
    ids = torch.randint(0, 200, (1, N), generator=torch.Generator().manual_seed(3))
    kwargs = layout.model_inputs(lm, ids)
    assert set(kwargs) == {"input_ids", "position_ids", "attention_mask", "cache", "use_cache"}
    assert kwargs["position_ids"].dtype == torch.float32 and kwargs["cache"] is None
    with torch.no_grad():
        got = lm.model(**kwargs).logits[0]
    per_layer = layout.positions.expand(lm.model.config.num_hidden_layers, -1)
    want = layer_by_layer(lm, ids, per_layer, allowed)
    assert_same(got, want)


def test_the_layouts_differ_and_bad_input_is_refused(lm):
    ids = torch.randint(0, 200, (1, N), generator=torch.Generator().manual_seed(3))
    out = {}
    with torch.no_grad():
        for name, (layout, _) in layouts().items():
            out[name] = lm.model(**layout.model_inputs(lm, ids)).logits[0, -1]
    assert not torch.allclose(out["gapped"], out["moved"]) and not torch.allclose(
        out["set isolated"], out["set visible"]
    )
    with pytest.raises(ValueError, match="places 9 slots, and the tokens are 4"):
        Layout.contiguous(N).model_inputs(lm, ids[:, :4])
    with pytest.raises(ValueError, match="position"):
        Layout.of(list(range(N - 1)) + [10_000_000]).model_inputs(lm, ids)
