"""The long-context methods set for a length: the choices the study's tables state, the refusals, and the
"as plain" rule (a method at factor 1 or group 1 is the plain model, logit for logit, in float64)."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.extension import RopeScaling, scaled, self_extended
from tempo_lab.extension.methods import METHODS, Method, self_extend_group
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import beyond_context, trained_context
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same


def test_the_rules_for_a_length_on_a_model_trained_at_8192():
    def at16(m: str) -> Method:
        if m == "self_extend":
            return Method(m, 16384, 8192, window=1024, group=3)
        return Method(m, 16384, 8192, factor=1.0 if m == "plain" else 2.0)

    settings = [at16(m).setting for m in METHODS]
    assert settings == ["", "factor 2", "factor 2", "factor 2", "factor 2", "window 1024, group 3"]
    assert self_extend_group(16384, 8192, 1024) == 3
    assert self_extend_group(65536, 8192, 1024) == 9
    assert self_extend_group(65536, 32768, 4096) == 3
    assert self_extend_group(4096, 8192, 1024) == 1
    # the paper's rule: the grouped positions reach as far as the trained context allows, not further
    for length, trained, window in [(16384, 8192, 1024), (65536, 8192, 1024), (65536, 32768, 4096)]:
        g = self_extend_group(length, trained, window)
        assert (trained - window) * g + window >= length > (trained - window) * (g - 1) + window
        Method("self_extend", length, trained, window=window, group=g)  # accepted: inside the context


def test_for_length_reads_the_model_s_trained_context():
    lm = tiny_random("llama")  # trained at its max_position_embeddings
    trained = trained_context(lm)
    inside = [Method.for_length(lm, m, trained // 2) for m in METHODS]
    assert all(m.is_plain for m in inside)
    assert [m.setting for m in inside] == ["", *["as plain"] * 5]
    far = Method.for_length(lm, "yarn", 3 * trained)
    assert far.factor == 3.0 and not far.is_plain
    se = Method.for_length(lm, "self_extend", 3 * trained)
    assert se.window == trained // 8 and se.group == self_extend_group(3 * trained, trained, trained // 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "rope"}, "method must be one of"),
        ({"name": "pi", "factor": 0.0}, "factor must be"),
        ({"name": "pi", "factor": -2.0}, "factor must be"),
        ({"name": "yarn", "factor": 2.0, "length": 20000}, "length = 20000 is beyond it: give factor >= 2.4"),
        ({"name": "self_extend", "window": 1024, "group": 2}, "group = 2 keeps grouped positions up to 8703"),
        ({"name": "self_extend", "window": 8192, "group": 3}, "window = 8192 is not inside the trained"),
        ({"name": "plain", "length": 0}, "length must be"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(kwargs, message):
    base = {"name": "plain", "length": 16384, "trained": 8192}
    with pytest.raises(ValueError, match=message):
        Method(**{**base, **kwargs})


def test_a_method_set_for_another_model_is_refused():
    lm = tiny_random("llama")
    method = Method("plain", 100, trained_context(lm) * 2)
    with pytest.raises(ValueError, match="was trained at"):
        with method.applied(lm):
            pass


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_every_method_at_factor_one_is_the_plain_model(family):
    """Why the study copies the plain rows under a method at a length inside the trained context: each
    rescaling at factor 1 and Self-Extend with group 1 give the plain model's logits (float64)."""
    lm = tiny_random(family)
    ids = torch.randint(0, lm.model.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    layout = Layout.gapped(24, 12, 100.0)
    core = DecodingCore(lm)
    with beyond_context(lm):
        plain = core.forward(ids, layout)
    trained = trained_context(lm)
    for scaling in (RopeScaling.linear(1.0), RopeScaling.ntk(1.0), RopeScaling.dynamic(1.0, trained),
                    RopeScaling.yarn(1.0)):  # fmt: skip
        with scaled(lm, scaling):
            assert_same(core.forward(ids, layout), plain)
    with self_extended(lm, window=4, group=1):
        assert_same(core.forward(ids, layout), plain)
    assert plain.dtype == torch.float64
