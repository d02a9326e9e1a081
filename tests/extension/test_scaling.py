"""Rotary scalings at inference (:mod:`tempo_lab.extension.scaling`) against transformers' own
``rope_parameters``: the reference is the same model rebuilt from its config with that method's
``rope_parameters`` and the same weights, so transformers computes its own table. Both run through the
decoding core with the same explicit mask (a gapped layout without one is read as packed sequences)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tempo_lab import masks
from tempo_lab.extension import RopeScaling, beyond_context, scaled, scaled_table
from tempo_lab.families import family_of
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, trained_context
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import EXACT, assert_same, real_atol

ROTARY = ["llama", "qwen2", "gemma2", "gemma3_text", "gpt_neox", "phi3", "phi", "glm", "olmo3", "falcon"]
PROMPT = "Once upon a time"  # 16 byte tokens
ORIGINAL = 256  # L₀ for yarn, llama3, longrope: the tiny models' bands fall in every regime of each method


def with_rope(lm: LoadedModel, method: dict, layer_type: str | None = None) -> LoadedModel:
    """``lm``'s model rebuilt by transformers from a copy of its config whose ``rope_parameters`` (for
    ``layer_type`` only, on a model with one RoPE per layer type) are updated with ``method``; same
    weights."""
    config = copy.deepcopy(lm.model.config)
    params = copy.deepcopy(config.rope_parameters)
    if layer_type is None:
        params |= method
    else:
        params[layer_type] |= method
    config.rope_parameters = params
    if "original_max_position_embeddings" in method and hasattr(config, "original_max_position_embeddings"):
        config.original_max_position_embeddings = method["original_max_position_embeddings"]  # Phi-3 reads it
    with torch.device(lm.device):
        model = type(lm.model)(config)
    model.load_state_dict(lm.model.state_dict())
    return LoadedModel(model=model.eval(), tokenizer=lm.tokenizer, name=f"{lm.name} ({method['rope_type']})")


def far_layout(n: int, far: float) -> torch.Tensor:
    """Positions ``(1, n)``: contiguous, the last three moved by ``far`` with a fractional step between."""
    p = torch.arange(n, dtype=torch.float32)
    p[-3:] += far
    p[-1] += 0.5
    return p[None]


def logits(lm: LoadedModel, positions: torch.Tensor) -> torch.Tensor:
    """tempo_lab's forward (the decoding core, its position checks included) over the prompt."""
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=lm.device).tril()[None, None]
    return DecodingCore(lm).forward(ids, Layout(positions.to(lm.device), causal))


def own_logits(lm: LoadedModel, positions: torch.Tensor) -> torch.Tensor:
    """The model's own forward at ``positions``, with an explicit causal mask per layer type (a gapped
    layout without one would be read as packed sequences); no tempo_lab position path."""
    ids = lm.encode(PROMPT)
    mask = family_of(lm.model).layer_masks(masks.causal_mask(ids.shape[1], dtype=lm.dtype).to(lm.device))
    with torch.no_grad():
        return lm.model(ids, position_ids=positions.to(lm.device), attention_mask=mask).logits


def methods(n_bands: int) -> dict[str, RopeScaling]:
    short = [1.0 + 0.25 * b for b in range(n_bands)]
    long = [8.0 ** (b / max(n_bands - 1, 1)) for b in range(n_bands)]  # 1 for the highest band .. 8
    return {
        "linear": RopeScaling.linear(4.0),
        "yarn": RopeScaling.yarn(4.0, original_length=ORIGINAL),
        "llama3": RopeScaling.llama3(8.0, original_length=ORIGINAL, high_freq_factor=8.0),
        "longrope": RopeScaling.longrope(short, long, original_length=ORIGINAL, factor=4.0),
    }


def plain(family: str) -> LoadedModel:
    return tiny_random(family, **MATRIX[family])


def scaled_layers(lm: LoadedModel) -> tuple[list[int] | None, str | None]:
    """Which layers the reference config scales: Gemma 3's global (full-attention) rotary only, as its real
    checkpoints do; every layer elsewhere."""
    types = getattr(lm.model.config, "layer_types", None)
    if isinstance(lm.model.config.rope_parameters.get("full_attention"), dict):
        return [i for i, t in enumerate(types) if t == "full_attention"], "full_attention"
    return None, None


@pytest.mark.parametrize("method", ["linear", "yarn", "llama3", "longrope"])
@pytest.mark.parametrize("family", ROTARY)
def test_a_scaling_equals_transformers_own_rope_parameters(family, method):
    lm = plain(family)
    layers, layer_type = scaled_layers(lm)
    table, _ = scaled_table(lm, RopeScaling.linear(1.0), layers[0] if layers else 0)
    scaling = methods(len(table))[method]
    params = lm.model.config.rope_parameters
    theta = (params[layer_type] if layer_type else params)["rope_theta"]
    reference = with_rope(lm, scaling.rope_parameters(theta), layer_type)
    # past L₀ (256): transformers' LongRoPE then picks the long table, which the layout states
    positions = far_layout(len(lm.encode(PROMPT)[0]), 300.0)
    want = own_logits(reference, positions)
    with scaled(lm, scaling, layers):
        got = logits(lm, positions)
    with beyond_context(lm):
        assert (want - logits(lm, positions)).abs().max() > 10 * EXACT  # the method changes the logits
    assert_same(got, want)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt_neox"])
def test_dynamic_at_a_stated_length_equals_transformers_dynamic_at_that_largest_position(family):
    lm = plain(family)
    trained = lm.model.config.max_position_embeddings
    positions = far_layout(len(lm.encode(PROMPT)[0]), trained + 40.0)
    length = float(positions.max()) + 1  # what transformers' dynamic NTK reads off the pass
    scaling = RopeScaling.dynamic(2.0, length=length)
    reference = with_rope(lm, scaling.rope_parameters(lm.model.config.rope_parameters["rope_theta"]))
    want = own_logits(reference, positions)
    with scaled(lm, scaling):
        assert_same(logits(lm, positions), want)


def test_ntk_is_dynamic_ntk_with_the_same_base():
    """NTK with factor a equals dynamic NTK at the length whose base is θ·a^(d/(d-2))."""
    lm = plain("llama")
    trained = lm.model.config.max_position_embeddings
    a, s = 3.0, 2.0
    length = int((a + s - 1) * trained / s)  # s·L/L₀ − (s − 1) = a
    ntk, _ = scaled_table(lm, RopeScaling.ntk(a))
    dynamic, _ = scaled_table(lm, RopeScaling.dynamic(s, length=length))
    assert_same(ntk, dynamic)
    base, _ = scaled_table(lm, RopeScaling.linear(1.0))
    assert ntk[0] == base[0] and torch.isclose(ntk[-1], base[-1] / a, rtol=1e-6)  # highest kept, lowest /a


def test_longrope_short_table_below_the_trained_length_and_the_table_switch_pitfall():
    """Below L₀ transformers' LongRoPE uses the short table, which ``long=False`` equals. Moving the last
    token past L₀ switches transformers to the long table for *every* token of the pass, so the first tokens'
    logits change although their positions did not; tempo_lab's layout keeps the table it states."""
    lm = plain("llama")
    n = len(lm.encode(PROMPT)[0])
    n_bands = len(scaled_table(lm, RopeScaling.linear(1.0))[0])
    scaling = methods(n_bands)["longrope"]
    scaling = RopeScaling.longrope(scaling.short_factor, scaling.long_factor, ORIGINAL, long=False)
    reference = with_rope(lm, scaling.rope_parameters(10000.0))
    near, far = far_layout(n, 20.0), far_layout(n, ORIGINAL + 20.0)
    with scaled(lm, scaling):
        ours_near, ours_far = logits(lm, near), logits(lm, far)
    assert_same(ours_near, own_logits(reference, near))
    first = slice(0, n - 3)  # the tokens whose positions the move leaves alone
    theirs_far = own_logits(reference, far)
    assert (theirs_far[:, first] - own_logits(reference, near)[:, first]).abs().max() > 10 * EXACT  # switched
    assert_same(ours_far[:, first], ours_near[:, first])  # no switch


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_a_scaling_composes_with_the_cache_fractional_positions_and_the_generators(family):
    """The retroactive generator (one prefill, one cached batched step at gapped and fractional positions)
    under a scaling equals the same generator on transformers' scaled model."""
    lm = plain(family)
    layers, layer_type = scaled_layers(lm)
    scaling = RopeScaling.yarn(4.0, original_length=ORIGINAL)
    params = lm.model.config.rope_parameters
    theta = (params[layer_type] if layer_type else params)["rope_theta"]
    reference = with_rope(lm, scaling.rope_parameters(theta), layer_type)
    gaps = [0, 2.5, 41.0, 300.25]
    with beyond_context(reference):
        want = RetroactivePositionGenerator(reference).explore(PROMPT, gaps=gaps, token="!")
    with scaled(lm, scaling, layers):
        got = RetroactivePositionGenerator(lm).explore(PROMPT, gaps=gaps, token="!")
    assert_same(got.probs, want.probs)


def test_factor_one_leaves_every_logit_bit_identical_and_the_hooks_go_on_exit():
    lm = plain("qwen2")
    positions = far_layout(len(lm.encode(PROMPT)[0]), 9.5)
    before = logits(lm, positions)
    with scaled(lm, RopeScaling.linear(1.0)):
        assert torch.equal(logits(lm, positions), before)
    with pytest.raises(RuntimeError, match="inside"), scaled(lm, RopeScaling.linear(4.0)):
        raise RuntimeError("inside")
    layers = lm.model.base_model.layers
    assert not lm.model.base_model._forward_pre_hooks and not any(b._forward_pre_hooks for b in layers)
    assert torch.equal(logits(lm, positions), before)


@pytest.mark.bundled
def test_the_bundled_model_under_yarn_and_llama3_equals_its_config(bundled):
    """Past the trained context (8192), both sides through the model's own forward (the decoding core is
    checked on the tiny models; on this model its path alone differs from the plain forward by ~3e-5)."""
    trained = bundled.model.config.max_position_embeddings
    positions = far_layout(len(bundled.encode(PROMPT)[0]), trained + 100.0)
    plain_logits = own_logits(bundled, positions)
    for scaling in (RopeScaling.yarn(2.0), RopeScaling.llama3(4.0)):
        params = scaling.rope_parameters(bundled.model.config.rope_parameters["rope_theta"], trained)
        want = own_logits(with_rope(bundled, params), positions)
        with scaled(bundled, scaling):
            got = own_logits(bundled, positions)
        torch.testing.assert_close(got, want, atol=real_atol(bundled, want), rtol=0)
        assert (got - plain_logits).abs().max() > 0.1  # far past the context, the scaling matters


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RopeScaling.linear(0.0), r"factor must be a finite number > 0, got 0\.0"),
        (lambda: RopeScaling.linear(-2), r"factor must be a finite number > 0, got -2"),
        (lambda: RopeScaling.yarn(2.0, original_length=0), r"original_length must be .* got 0"),
        (lambda: RopeScaling.yarn(2.0, beta_fast=1.0, beta_slow=2.0), r"beta_fast > beta_slow > 0"),
        (lambda: RopeScaling.llama3(2.0, low_freq_factor=4.0), r"high_freq_factor > low_freq_factor"),
        (lambda: RopeScaling.longrope([1.0, 0.0], [1.0, 2.0]), r"short_factor\[1\] must be .* got 0\.0"),
        (lambda: RopeScaling("rope2x", 2.0), r"method must be one of .* got 'rope2x'"),
        (lambda: RopeScaling("dynamic", 2.0), r"dynamic NTK needs length="),
    ],
)
def test_bad_parameters_are_refused_naming_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_models_and_layers_are_refused_before_any_forward(tiny, tiny_gpt2):
    with (
        pytest.raises(ValueError, match="no rotary position embedding"),
        scaled(tiny_gpt2, RopeScaling.linear(2)),
    ):
        pass
    with pytest.raises(ValueError, match=r"layers\[1\] = 7 is out of range: this model has 2 layers"):
        with scaled(tiny, RopeScaling.linear(2.0), layers=[0, 7]):
            pass
    wrong = RopeScaling.longrope([1.0, 2.0], [1.0, 4.0])  # the tiny Llama has 8 bands
    with pytest.raises(ValueError, match=r"short_factor has 2 factors; this model has 8 rotary bands"):
        with scaled(tiny, RopeScaling.longrope([1.0, 2.0], [1.0, 4.0], long=False)):
            pass
    with pytest.raises(ValueError, match=r"long_factor has 2 factors; this model has 8 rotary bands"):
        with scaled(tiny, wrong):
            pass


def test_beyond_context_lifts_the_limit_for_its_block_only_and_nests(tiny, tiny_gpt2):
    """Outside, a position past the context is refused (it names the limit); inside, the plain model runs
    there, and its logits equal the model's own forward; the limit is back after nested blocks and after an
    exception; a learned position table is refused with the reason."""
    far = far_layout(len(tiny.encode(PROMPT)[0]), float(tiny.max_positions))
    with pytest.raises(ValueError, match=r"past the model's context \(max_position_embeddings = 512"):
        logits(tiny, far)
    with beyond_context(tiny):
        with beyond_context(tiny):
            assert tiny.max_positions is None
        assert_same(logits(tiny, far), own_logits(tiny, far))
    assert tiny.max_positions == 512
    with pytest.raises(RuntimeError, match="inside"), beyond_context(tiny):
        raise RuntimeError("inside")
    assert tiny.max_positions == 512
    with pytest.raises(ValueError, match=r"no position past its context \(256\) to run at: it has no rotary"):
        with beyond_context(tiny_gpt2):
            pass


PRESCALED = {
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 64,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0},
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "longrope": {"rope_type": "longrope", "factor": 4.0, "original_max_position_embeddings": 64},
}  # fmt: skip


def prescaled(family: str, rope_type: str) -> LoadedModel:
    """A tiny model of ``family`` whose checkpoint ships its own scaling of type ``rope_type`` (LongRoPE's
    per-band lists sized to its bands), rebuilt by transformers from that config."""
    lm = plain(family)
    method = dict(PRESCALED[rope_type])
    if rope_type == "longrope":
        n = len(scaled_table(lm, RopeScaling.linear(1.0))[0])
        method |= {"short_factor": [1.0 + 0.1 * b for b in range(n)], "long_factor": [2.0] * n}
    return with_rope(lm, method)


@pytest.mark.parametrize("rope_type", sorted(PRESCALED))
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_factor_one_leaves_a_prescaled_checkpoint_as_it_is(family, rope_type):
    """A checkpoint's own scaling (yarn with its attention factor, llama3, linear, dynamic, longrope) is kept:
    the method composes with it, so linear(1.0) is the identity (the old hook rebuilt cos/sin from the
    method alone and moved a yarn x8 checkpoint's logits by 1.31)."""
    lm = prescaled(family, rope_type)
    positions = far_layout(len(lm.encode(PROMPT)[0]), 20.0)  # inside every table's own range
    own = own_logits(lm, positions)
    with scaled(lm, RopeScaling.linear(1.0)):
        got = logits(lm, positions)
    assert (got - own).abs().max() <= 1e-6 * max(1.0, float(own.abs().max()))
    with scaled(lm, RopeScaling.linear(2.0)):  # and a real method does act on it
        assert (logits(lm, positions) - own).abs().max() > 1e-4  # 100x the identity's bound


def test_a_method_composes_with_the_checkpoints_own_scaling():
    """Linear x2 on a checkpoint scaled linear x2 is the same weights loaded with linear x4; YaRN's attention
    factor multiplies the checkpoint's (yarn x4 then linear x1: the checkpoint's factor alone)."""
    lm = prescaled("llama", "linear")
    four = with_rope(plain("llama"), {"rope_type": "linear", "factor": 4.0})
    positions = far_layout(len(lm.encode(PROMPT)[0]), 30.0)
    with scaled(lm, RopeScaling.linear(2.0)):
        assert_same(logits(lm, positions), own_logits(four, positions))
    yarn = prescaled("llama", "yarn")
    frequencies, factor = scaled_table(yarn, RopeScaling.linear(1.0))
    assert factor == pytest.approx(0.1 * math.log(4.0) + 1.0)  # the checkpoint's own attention factor
    assert_same(frequencies, yarn.model.model.rotary_emb.inv_freq.float())


def test_the_trained_context_is_the_checkpoints_original_one():
    yarn = prescaled("llama", "yarn")
    assert yarn.model.config.max_position_embeddings == 512 and trained_context(yarn) == 64
    assert trained_context(plain("llama")) == 512
