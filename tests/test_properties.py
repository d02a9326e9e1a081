"""Property-based tests (Hypothesis): every public entry point that takes positions, masks, token ids, caches
or a spec either returns finite results equal to an independent reference (valid input) or raises tempo_lab's
own ``ValueError`` / ``TypeError`` naming the argument (invalid input); never a raw torch, transformers or
Python error, a NaN, a leaked mask or a silent no-op.

Draws are derandomized (the same examples on every run, so CI is reproducible) with no deadline and a bounded
count per test (:data:`EXAMPLES`); the whole file stays under a minute on the 2-core CPU. Shrunk
counter-examples the suite found are kept as regular tests in the files of the code they broke.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempo_lab import positions as pos
from tempo_lab.caches import CacheSpec
from tempo_lab.caches.slots import evict, keep, with_layer
from tempo_lab.extension import RopeScaling
from tempo_lab.extension.methods import METHODS, Method
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import tv_to
from tempo_lab.interventions.edits import moved
from tempo_lab.layout import Layout
from tempo_lab.long_context.study import LongContextSpec
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same

EXAMPLES = 40
settings.register_profile(
    "tempo_lab", max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
settings.load_profile("tempo_lab")
REFUSED = (ValueError, TypeError)

LM = tiny_random("llama")
CORE = DecodingCore(LM)
VOCAB = LM.model.config.vocab_size
N = 6
IDS = torch.arange(3, 3 + N)[None]

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-10, 10**7).map(float),
    st.sampled_from([0.0, 0.5, 1.0, 2.5, 511.0, 512.0, 1e30, -1.0]),
)


def refused(exc: BaseException, *names: str) -> None:
    """A refusal of ours, naming one of ``names``."""
    assert isinstance(exc, REFUSED), f"raw {type(exc).__name__}: {exc}"
    text = str(exc)
    assert any(n in text for n in names), f"{text!r} names none of {names}"


def reference(ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The model called directly: positions as given, the mask additive (or the causal one)."""
    n = ids.shape[1]
    if mask is None:
        mask = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    additive = torch.zeros(mask.shape, dtype=LM.dtype).masked_fill(~mask, torch.finfo(LM.dtype).min)
    with torch.no_grad():
        return LM.model(input_ids=ids, position_ids=positions, attention_mask=additive).logits


@given(st.lists(numbers, min_size=N, max_size=N), st.booleans())
def test_a_layout_either_runs_as_the_model_itself_or_is_refused_naming_the_positions(values, any_order):
    p = torch.tensor([values], dtype=torch.float32)
    try:
        layout = Layout(p, any_order=any_order)
        got = CORE.forward(IDS, layout)
    except Exception as exc:  # noqa: BLE001 - the property is what is raised
        refused(exc, "position")
        return
    assert torch.isfinite(got).all()
    assert_same(got, reference(IDS, layout.positions.to(torch.float64), None))


@given(st.lists(st.booleans(), min_size=N * N, max_size=N * N))
def test_a_bool_mask_either_runs_as_the_model_itself_or_is_refused_naming_the_mask(cells):
    mask = torch.tensor(cells).view(1, 1, N, N)
    try:
        got = CORE.forward(IDS, Layout(pos.contiguous(N), mask))
    except Exception as exc:  # noqa: BLE001
        refused(exc, "mask")
        return
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    assert not (mask[0, 0] & ~causal).any() and mask[0, 0].any(-1).all()  # no leak, no empty row
    assert_same(got, reference(IDS, pos.contiguous(N).double(), mask))


@given(st.lists(st.sampled_from([0.0, -math.inf, math.nan, 1.0, -1e30]), min_size=N * N, max_size=N * N))
def test_an_additive_mask_is_refused_unless_every_row_attends_to_itself_and_before(cells):
    mask = torch.tensor(cells, dtype=torch.float64).view(1, 1, N, N)
    try:
        got = CORE.forward(IDS, Layout(pos.contiguous(N), mask))
    except Exception as exc:  # noqa: BLE001
        refused(exc, "mask")
        return
    assert torch.isfinite(got).all()


@given(st.lists(st.integers(-5, VOCAB + 5), min_size=1, max_size=N),
       st.sampled_from([torch.long, torch.float32]))  # fmt: skip
def test_token_ids_outside_the_vocabulary_or_not_integers_are_refused(tokens, dtype):
    ids = torch.tensor([tokens], dtype=dtype)
    try:
        got = CORE.forward(ids, Layout.contiguous(len(tokens)))
    except Exception as exc:  # noqa: BLE001
        refused(exc, "input_ids")
        assert dtype != torch.long or not all(0 <= t < VOCAB for t in tokens)
        return
    assert dtype == torch.long and torch.isfinite(got).all()


@given(st.integers(-3, 40), st.integers(-3, 5), numbers)
def test_position_helpers_refuse_what_they_cannot_place(prompt_len, n_new, gap):
    try:
        p = pos.with_gap(prompt_len, n_new, gap)
    except Exception as exc:  # noqa: BLE001
        refused(exc, "prompt_len", "n_new", "gap")
        return
    assert p.shape == (1, prompt_len + n_new) and torch.isfinite(p).all()
    assert p[0, prompt_len] == prompt_len + gap


@given(numbers, numbers, numbers)
def test_a_grid_is_built_or_refused_with_its_size_never_a_hang(start, stop, step):
    try:
        g = pos.grid(start, stop, step)
    except Exception as exc:  # noqa: BLE001
        refused(exc, "start", "stop", "step", "points")
        return
    assert 1 <= len(g) <= pos.MAX_GRID and all(math.isfinite(x) for x in g)


@given(st.integers(-2, 12), st.lists(st.integers(-3, 14), max_size=3), numbers)
def test_moving_slots_outside_the_sequence_is_refused(n, slots, by):
    try:
        edit = moved(n, slots, by)
    except Exception as exc:  # noqa: BLE001
        refused(exc, "n_slots", "slots")
        return
    assert edit.shift.shape == (n,) and all(0 <= s < n for s in slots)


def _cache():
    from transformers import DynamicCache

    cache = DynamicCache(config=LM.model.config)
    CORE.forward(IDS, Layout.contiguous(N), cache)
    return cache


CACHE = _cache()


@given(st.integers(-3, 4), st.lists(st.integers(-3, N + 2), max_size=4))
def test_cache_surgery_with_an_index_out_of_range_is_refused(layer, slots):
    index = torch.tensor([slots], dtype=torch.long)
    for call, names in ((lambda: with_layer(CACHE, layer, CACHE), ("layer",)),
                        (lambda: evict(CACHE, slots), ("slot",)),
                        (lambda: keep(CACHE, index), ("slot", "index"))):  # fmt: skip
        try:
            out = call()
        except Exception as exc:  # noqa: BLE001
            refused(exc, *names)
            continue
        assert out.layers[0].keys.shape[-2] <= N


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=3, max_size=3))
def test_a_reference_distribution_that_is_not_one_is_refused(values):
    try:
        metric = tv_to(torch.tensor(values))
    except Exception as exc:  # noqa: BLE001
        refused(exc, "reference")
        return
    assert math.isfinite(float(metric(torch.tensor([[1 / 3, 1 / 3, 1 / 3]])).sum()))


fields = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, width=32), st.text(max_size=3), st.none(),
                   st.just(()), st.just((0, 1)))  # fmt: skip


SPEC_FIELDS = ["sinks", "window", "length", "ratio", "ablate", "partial", "prompts", "models", "segment"]


@given(st.sampled_from(SPEC_FIELDS), fields)
def test_a_cache_spec_is_checked_when_it_is_built(name, value):
    try:
        spec = CacheSpec(**{name: value})
    except Exception as exc:  # noqa: BLE001
        refused(exc, name)
        return
    assert getattr(spec, name) == value


@given(st.sampled_from(["mode_steps", "tempo_steps", "mode_threshold", "retro_gaps", "dropout_gaps"]), fields)
def test_conditions_are_checked_when_they_are_built(name, value):
    try:
        Conditions(**{name: value})
    except Exception as exc:  # noqa: BLE001
        refused(exc, name)


@given(st.sampled_from(["gap_n", "real_n", "window", "gaps", "methods", "models", "per_part"]), fields)
def test_a_long_context_spec_is_checked_when_it_is_built(name, value):
    try:
        LongContextSpec(**{name: value})
    except Exception as exc:  # noqa: BLE001
        refused(exc, name)


@given(st.sampled_from(METHODS), st.integers(-5, 70000), numbers, st.integers(-2, 9000), st.integers(-2, 12))
def test_a_method_for_a_length_is_checked_when_it_is_built(name, length, factor, window, group):
    try:
        Method(name, length, 8192, factor=factor, window=window, group=group)
    except Exception as exc:  # noqa: BLE001
        refused(exc, "length", "factor", "window", "group")


@given(st.sampled_from(["linear", "ntk", "yarn"]), numbers)
def test_a_rope_scaling_factor_must_be_positive_and_finite(method, factor):
    try:
        RopeScaling(method, factor)
    except Exception as exc:  # noqa: BLE001
        refused(exc, "factor")
        return
    assert factor > 0 and math.isfinite(factor)


@pytest.mark.parametrize("cells", [[True] * 4 + [False] + [True] * 31])
def test_the_shrunk_example_a_row_with_nothing_to_see_is_refused(cells):
    """What the mask property shrank to on the way: one query row with no slot to attend to."""
    mask = torch.ones(1, 1, N, N, dtype=torch.bool).tril()
    mask[0, 0, 4] = False
    with pytest.raises(ValueError, match="mask"):
        Layout(pos.contiguous(N), mask)
