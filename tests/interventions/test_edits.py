"""Per-layer, per-band and per-head positions against independent forwards: the model's modules called
layer by layer, a hand-written RoPE attention, the plainly shifted forward, and a full recomputation of cached
steps."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.families import ARCHITECTURES
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.interventions import PositionEdit, Rotary, intervene, moved
from tempo_lab.layout import Layout
from tempo_lab.live.session import LiveSession
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same
from tests.interventions.reference import hand_rotated, layer_by_layer
from tests.test_families import FAMILIES, PROMPT, build

ROTARY = sorted(f for f in FAMILIES if ARCHITECTURES[f].has_bands)
LOCAL = ("llama", "qwen2", "gemma2", "gpt_neox")  # plain, grouped-query, soft-capped sliding, partial rotary


def _layout(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fractional positions with two parallel sets at the end, and the isolated sets' mask
    ``(1, 1, n, n)``."""
    prompt = n - 5
    positions = torch.cat([pos.contiguous(prompt), pos.shared(prompt + 0.5, [3, 2])], 1)
    labels = masks.set_labels([3, 2], prompt)
    return positions, masks.parallel_mask(labels, "isolated")


def _shift(n: int) -> torch.Tensor:
    shift = torch.zeros(n)
    shift[n - 7 :] = torch.linspace(
        0.75, 4.25, 7
    )  # moves the prompt's tail and both sets by different amounts
    return shift


def _close(got: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Equal to ``EXACT`` relative to the logits' scale (a tiny Cohere's logits are ~0.01)."""
    scale = float(expected.abs().max())
    assert_same(got / scale, expected / scale, msg=msg or None)


def _differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) > 1e-3 * float(b.abs().max())


def sharp(name: str):
    """The family matrix's tiny model with larger weights than the default: position matters more."""
    return build(name, initializer_range=0.2)


def _setting(lm):
    """``(core, rotary, ids (1, n), positions, mask, shift)``: the prompt, its layout and the move the matrix
    tests apply."""
    ids = lm.encode(PROMPT)
    positions, mask = _layout(ids.shape[1])
    return DecodingCore(lm), Rotary(lm), ids, positions, mask, _shift(ids.shape[1])


@pytest.fixture(scope="module", params=ROTARY)
def family(request):
    return sharp(request.param)


def test_every_unit_moved_equals_the_plainly_shifted_forward_and_no_unit_the_plain_one(family):
    lm = family
    core, rotary, ids, positions, mask, shift = _setting(lm)
    plain, shifted = core.full(ids, Layout(positions, mask)), core.full(ids, Layout(positions + shift, mask))
    assert _differs(plain, shifted)  # the move changes the output
    everything = {
        "layers": PositionEdit(shift),
        "bands": PositionEdit(shift, bands=list(range(rotary.n_bands()))),
        "heads": PositionEdit(shift, heads=list(range(rotary.n_heads))),
    }
    if not lm.family.takes_own_attention(computes_softmax=False):  # Falcon: per-head edits are refused
        del everything["heads"]
    for name, edit in everything.items():
        with intervene(lm, edit):
            _close(core.full(ids, Layout(positions, mask)), shifted, msg=name)
    for name in everything:
        with intervene(lm, PositionEdit(shift, **{name: []})):
            _close(core.full(ids, Layout(positions, mask)), plain, msg=name)
    assert lm.model.config._attn_implementation == "eager"


def test_a_cached_step_under_every_granularity_equals_the_full_recompute(family):
    lm = family
    core, rotary, ids, positions, mask, shift = _setting(lm)
    n = ids.shape[1]
    edits = [
        PositionEdit(shift, layers=[rotary.n_layers - 1]),
        PositionEdit(-0.5 * shift, layers=[0], bands=[0, rotary.n_bands() - 1]),
        PositionEdit(2 * shift, layers=[0], heads=[1]),
    ][: 3 if lm.family.takes_own_attention(computes_softmax=False) else 2]
    split = n - 4
    with intervene(lm, *edits):
        full = core.full(ids, Layout(positions, mask))
        cache = DynamicCache(config=lm.model.config)
        core.forward(ids[:, :split], Layout(positions[:, :split], mask[:, :, :split, :split]), cache)
        stepped = core.forward(ids[:, split:], Layout(positions[:, split:], mask[:, :, split:]), cache)
    _close(stepped[0], full[0, split:])


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("layer", [0, 1])
def test_one_layer_moved_equals_the_layer_by_layer_forward(name, layer):
    lm = sharp(name)
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    positions = pos.contiguous(n) + torch.linspace(0, 2.5, n)  # fractional, increasing
    shift = _shift(n)
    per_layer = positions[0].repeat(2, 1)
    per_layer[layer] += shift
    with intervene(lm, PositionEdit(shift, layers=[layer])):
        got = DecodingCore(lm).full(ids, Layout(positions))[0]
    _close(got, layer_by_layer(lm, ids, per_layer))
    untouched = layer_by_layer(lm, ids, positions[0].repeat(2, 1))
    _close(DecodingCore(lm).full(ids, Layout(positions))[0], untouched)
    assert _differs(got, untouched)


def _per_unit(positions: torch.Tensor, n_layers: int, n_heads: int, n_bands: int) -> torch.Tensor:
    """``(layers, heads, n, bands)`` copies of ``positions`` ``(n,)``."""
    return positions[None, None, :, None].repeat(n_layers, n_heads, 1, n_bands).double()


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_complementary_band_sets_equal_a_hand_rotated_attention(name):
    lm = tiny_random(name, initializer_range=0.2)
    rotary = Rotary(lm)
    ids = lm.encode(PROMPT)
    n, n_bands = ids.shape[1], rotary.n_bands()
    positions, shift = pos.contiguous(n)[0], _shift(n)
    high = list(range(n_bands // 2))
    low = list(range(n_bands // 2, n_bands))
    outputs = []
    for bands in (high, low):
        p = _per_unit(positions, rotary.n_layers, rotary.n_heads, n_bands)
        p[..., bands] += shift[None, None, :, None].double()
        with intervene(lm, PositionEdit(shift, bands=bands)):
            got = DecodingCore(lm).full(ids, Layout(positions[None]))[0]
        assert_same(got, hand_rotated(lm, ids, p, p))
        outputs.append(got)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3  # the two halves of the spectrum act differently


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_one_head_moved_equals_a_hand_written_attention_under_grouped_query_attention(name):
    lm = tiny_random(name, initializer_range=0.2)
    rotary = Rotary(lm)
    config = lm.model.config
    assert config.num_key_value_heads < config.num_attention_heads  # heads 2 and 3 share one key head
    ids = lm.encode(PROMPT)
    n, n_bands = ids.shape[1], rotary.n_bands()
    positions, shift = pos.contiguous(n)[0], _shift(n)
    p = _per_unit(positions, rotary.n_layers, rotary.n_heads, n_bands)
    p[1, 2] += shift[:, None].double()
    with intervene(lm, PositionEdit(shift, layers=[1], heads=[2])):
        got = DecodingCore(lm).full(ids, Layout(positions[None]))[0]
    assert_same(got, hand_rotated(lm, ids, p, p))
    unmoved = _per_unit(positions, rotary.n_layers, rotary.n_heads, n_bands)
    assert (got - hand_rotated(lm, ids, unmoved, unmoved)).abs().max() > 1e-3


def test_bands_are_the_models_frequencies_by_index_and_wavelength():
    lm = tiny_random("llama")
    table = Rotary(lm).bands()
    config = lm.model.config
    theta = config.rope_parameters["rope_theta"]
    d = config.hidden_size // config.num_attention_heads
    expected = [theta ** (-2 * j / d) for j in range(d // 2)]
    assert table.band.tolist() == list(range(d // 2))
    assert table.frequency.tolist() == pytest.approx(expected, rel=1e-5)
    assert table.wavelength.tolist() == pytest.approx([2 * math.pi / f for f in expected], rel=1e-5)
    gemma3 = Rotary(build("gemma3_text")).bands()
    assert set(gemma3.layer_type) == {"sliding_attention", "full_attention"}


def test_a_generator_and_a_live_session_run_under_an_intervention(tiny):
    """The explorer's placed token is seen at gap 0 by layer 0 and at gap 3.5 by layer 1: the same numbers as
    the layer-by-layer forward, through the generator's and the session's cached branches."""
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    token = int(ids[0, 3])
    full_ids = torch.cat([ids, torch.tensor([[token]])], 1)
    placed = pos.with_gap(t, 1, 3.5)[0]
    per_layer = torch.stack([pos.contiguous(t + 1)[0], placed])
    expected = torch.softmax(layer_by_layer(tiny, full_ids, per_layer)[-1], -1)
    with intervene(tiny, moved(t + 1, t, -3.5, layers=[0])):
        result = RetroactivePositionGenerator(tiny).explore(ids, [t + 3.5], token=token)
        session = LiveSession(tiny)
        session.use_prompt(PROMPT)
        live = session.place(token, [t + 3.5])
    assert_same(result.probs[0], expected)
    assert_same(live[0], expected)


def test_interventions_nest_and_leave_the_model_as_it_was_also_after_an_error(tiny_sdpa):
    lm = tiny_sdpa
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    core = DecodingCore(lm)
    before = core.full(ids, Layout(pos.contiguous(n)))
    shift = _shift(n)
    with intervene(lm, PositionEdit(shift, heads=[0])):
        outer = core.full(ids, Layout(pos.contiguous(n)))
        with intervene(lm, PositionEdit(shift, heads=[1])):
            assert (core.full(ids, Layout(pos.contiguous(n))) - outer).abs().max() > 1e-4
        torch.testing.assert_close(core.full(ids, Layout(pos.contiguous(n))), outer, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="boom"), intervene(lm, PositionEdit(shift, heads=[0], layers=[1])):
        raise RuntimeError("boom")
    assert lm.model.config._attn_implementation == "sdpa"
    assert not any(m._forward_pre_hooks for m in lm.model.modules())
    torch.testing.assert_close(core.full(ids, Layout(pos.contiguous(n))), before, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (dict(layers=[2]), r"layers\[0\] = 2 is out of range: this model has 2 layers"),
        (dict(layers=[0], heads=[4]), r"heads\[0\] = 4 is out of range: this model has 4 heads"),
        (dict(bands=[0, 8]), r"bands\[1\] = 8 is outside the rotary dimensions: this model has 8 frequency"),
        (dict(bands=[-1]), r"bands\[0\] = -1 is outside"),
    ],
)
def test_a_unit_out_of_range_is_named(tiny, edit, message):
    with pytest.raises(ValueError, match=message), intervene(tiny, PositionEdit(torch.zeros(4), **edit)):
        pass


def test_a_shift_that_is_not_a_float_vector_or_not_finite_is_refused(tiny):
    for shift, message in (
        (torch.zeros(4, dtype=torch.long), "float tensor"),
        (torch.zeros(2, 2, 2), "shape"),
        (torch.tensor([0.0, float("nan")]), "NaN"),
    ):
        with pytest.raises(ValueError, match=message), intervene(tiny, PositionEdit(shift)):
            pass


def test_a_model_with_learned_position_tables_refuses_band_and_head_shifts_with_the_reason(tiny_gpt2):
    for edit in (PositionEdit(torch.zeros(3), bands=[0]), PositionEdit(torch.zeros(3), heads=[0])):
        with pytest.raises(ValueError, match="learned table at the input"), intervene(tiny_gpt2, edit):
            pass


def test_edits_of_the_same_units_add_up_and_row_specific_edits_keep_to_their_rows(tiny):
    """Two edits of band 0 by 2 and by 3 equal one by 5; edits whose shifts are non-zero in one batch row
    each give every row what its own edit alone gives it (what notebook 09's study batches on)."""
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    core = DecodingCore(tiny)
    positions = pos.contiguous(n)
    with intervene(tiny, moved(n, n - 1, 2.0, bands=[0]), moved(n, n - 1, 3.0, bands=[0], layers=[0, 1])):
        twice = core.full(ids, Layout(positions))
    with intervene(tiny, moved(n, n - 1, 5.0, bands=[0])):
        once = core.full(ids, Layout(positions))
    _close(twice, once)
    rows, alone = [], []
    for r, bands in enumerate([[0], [1], [2, 3]]):
        shift = torch.zeros(3, n)
        shift[r, n - 1] = 7.5
        rows.append(PositionEdit(shift, bands=bands))
        with intervene(tiny, moved(n, n - 1, 7.5, bands=bands)):
            alone.append(core.full(ids, Layout(positions))[0])
    with intervene(tiny, *rows):
        together = core.full(ids.expand(3, -1), Layout(positions.expand(3, -1)))
    _close(together, torch.stack(alone))


@pytest.mark.parametrize(
    "inner",
    [dict(heads=[1]), dict(heads=[0], layers=[1]), dict(bands=[0, 2]), dict(layers=[0])],
    ids=["other head", "same head", "bands", "layer"],
)
def test_a_nested_intervention_equals_both_edits_applied_in_one(tiny, inner):
    """The inner block's edits act on top of the outer's, per head too (they used to replace the outer's
    head edits on the layers they shared)."""
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    core, positions = DecodingCore(tiny), pos.contiguous(n)
    outer = PositionEdit(_shift(n), heads=[0])
    second = PositionEdit(_shift(n) * -0.5 + 1.25, **inner)
    with intervene(tiny, outer):
        alone = core.full(ids, Layout(positions))
        with intervene(tiny, second):
            nested = core.full(ids, Layout(positions))
        # the inner one is gone
        torch.testing.assert_close(core.full(ids, Layout(positions)), alone, atol=0, rtol=0)
    with intervene(tiny, outer, second):
        both = core.full(ids, Layout(positions))
    _close(nested, both)
    assert _differs(nested, alone)


def test_two_threads_each_intervening_on_its_own_model_get_what_each_gets_alone():
    """The edits of an open intervention belong to its context: two threads, each with its own model and its
    own head, band and layer edits, run at once (each waiting for the other inside its block) and get what
    each gets alone."""
    import threading

    models = [tiny_random("llama", seed=s, initializer_range=0.2) for s in (1, 2)]
    n = models[0].encode(PROMPT).shape[1]
    settings = [
        (models[0], [PositionEdit(_shift(n), heads=[0]), moved(n, n - 1, 4.0, bands=[1])]),
        (models[1], [PositionEdit(_shift(n) * 2, heads=[3], layers=[0]), moved(n, 2, 9.0, layers=[1])]),
    ]

    def run(lm, edits, barrier=None):
        with intervene(lm, *edits):
            if barrier is not None:
                barrier.wait()  # both blocks are open before either runs its passes
            return [DecodingCore(lm).full(lm.encode(PROMPT), Layout(pos.contiguous(n))) for _ in range(3)]

    alone = [run(lm, edits) for lm, edits in settings]
    barrier, got, errors = threading.Barrier(2), [None, None], []

    def worker(i):
        try:
            got[i] = run(*settings[i], barrier)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread below
            barrier.abort()  # the other thread's wait fails at once instead of waiting for this one
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(2):
        for a, b in zip(got[i], alone[i], strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    plain = DecodingCore(models[0]).full(models[0].encode(PROMPT), Layout(pos.contiguous(n)))
    assert _differs(alone[0][0], plain)
