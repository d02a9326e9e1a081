"""The registries built from the slices: every phenomenon's batched study measurement against the same rows
made one prompt at a time through the single-prompt generators (the claims' rules: tests/test_claims.py)."""

from __future__ import annotations

import math

import pytest
import torch

from tempo_lab import load_model
from tempo_lab.generators import RetroactivePositionGenerator, lockstep
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened
from tempo_lab.phenomena import CLAIMS, MEASURES, PHENOMENA, SINGLE
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.phenomena.dashboard import explorers
from tempo_lab.phenomena.gap_dropout import study as gap_dropout
from tempo_lab.phenomena.isolation import study as isolation
from tests.helpers import assert_same

PROMPTS = [
    "Once upon a time",
    "The cat",
    "A much longer prompt about nothing in particular",
    "Hi there",
    "Then",
]
COND = Conditions(mode_threshold=0.012, tempo_thresholds=(0.008, 0.012), mode_steps=5, tempo_steps=4)
KEYS = ("prompt", "strategy", "mode", "gap", "threshold", "measure", "index")


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def batch(lm):
    return [(i, lm.encode(p)) for i, p in enumerate(PROMPTS)]


def keyed(rows: list[dict]) -> dict[tuple, dict]:
    return {tuple(r.get(k) for k in KEYS): r for r in rows}


def test_prompts_are_ragged(batch):
    assert len({ids.shape[1] for _, ids in batch}) == len(batch)


def test_lockstep_prefill_equals_each_prompt_alone(lm, batch):
    retro = RetroactivePositionGenerator(lm)
    logits = Lockstep(retro.core).prefill([ids for _, ids in batch])
    for (_, ids), got in zip(batch, logits, strict=True):
        assert_same(got, retro.core.prefill(ids).next_logits)


@pytest.fixture(params=["one pass", "grouped"])
def passes(request, monkeypatch):
    """Every lockstep step as one pass over all rows (the default cost model on these small batches), or
    grouped by how many tokens each row feeds wherever that saves a padded slot (``PASS_COST`` 0)."""
    if request.param == "grouped":
        monkeypatch.setattr(lockstep, "PASS_COST", 0)
    return request.param


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_lockstep_attention_maps_equal_each_run_captured_alone(family, passes):
    """TEMPO runs of ragged prompts, each prompt prefilled once and branched into two modes, with attention
    captured over the lockstep: every row's assembled map equals ``attention_map()`` of the same run made
    alone with ``capture=True`` (a llama, whose logits the core projects itself, and a sliding-window
    gemma3 through the model's own head), whether a step runs as one pass or as passes over groups of rows."""
    from tempo_lab.generators import ParallelTokenGenerator
    from tempo_lab.phenomena.batching import tempo_runs
    from tempo_lab.tiny import tiny_random

    lm = tiny_random(family, **SLIDING.get(family, {}))
    batch = [(i, lm.encode(p)) for i, p in enumerate(PROMPTS)]
    threshold = {"llama": 0.012, "gemma3_text": 0.005}[family]  # sets of 2+ members on each tiny model
    plans = [(b, {"threshold": threshold, "max_steps": 5, "intraset": m}) for b in (2, 0, 3)
             for m in ("isolated", "visible")]  # fmt: skip
    results, maps = tempo_runs(lm, batch, plans, attention=True)
    assert any(s >= 2 for r in results for s in r.set_sizes)  # the maps span parallel sets
    gen = ParallelTokenGenerator(lm)
    for (b, opts), got, m in zip(plans, results, maps, strict=True):
        alone = gen.generate(batch[b][1], capture=True, progress=False, **opts)
        assert got.text == alone.text
        assert_same(m, alone.attention_map())


def looped(lm, phenomenon: str, batch, cond) -> list[dict]:
    """The phenomenon's single-prompt rows for every prompt of ``batch``, one after another."""
    return [row for i, ids in batch for row in SINGLE[phenomenon](lm, i, ids, cond)]


def test_every_measured_phenomenon_has_its_single_prompt_twin_and_one_name():
    assert set(MEASURES) == set(SINGLE) == {"gap_dropout", "fractional", "retroactive", "isolation",
                                            "compressed", "tempo_sets", "localisation"}  # fmt: skip
    names = [p.name for p in PHENOMENA]
    assert len(set(names)) == len(names) and set(explorers()) <= set(names)
    assert {c.phenomenon for c in CLAIMS} <= set(names)


@pytest.mark.parametrize("phenomenon", list(MEASURES))
def test_batched_rows_equal_the_single_prompt_rows(lm, batch, phenomenon, passes):
    got = keyed(MEASURES[phenomenon](lm, batch, COND))
    want = keyed(looped(lm, phenomenon, batch, COND))
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert got[key].keys() == row.keys()
        for name, value in row.items():
            if isinstance(value, float) and not math.isnan(value):
                assert got[key][name] == pytest.approx(value, abs=1e-4), (key, name)
            elif isinstance(value, float):
                assert math.isnan(got[key][name]), (key, name)
            else:
                assert got[key][name] == value, (key, name)


def test_the_tiny_setting_exercises_parallel_sets_and_dropout(lm, batch):
    modes = isolation.measure(lm, batch, COND)
    assert any(r["parallel_sets"] > 0 for r in modes) and not all(r["identical_text"] for r in modes)
    drop = gap_dropout.measure(lm, batch, COND)
    assert {r["prompt_mass"] for r in drop if r["strategy"] == "default_no_cache" and r["gap"] > 0} == {0.0}
    assert all(r["prompt_mass"] > 0.1 for r in drop if r["strategy"] == "additive_4d")


def test_conditions_refuse_gap_lists_without_zero():
    with pytest.raises(ValueError, match="retro_gaps must start at 0"):
        Conditions(retro_gaps=(5, 10))
    with pytest.raises(ValueError, match=r"thresholds\[0\] must be in \(0, 1\], got 1.5"):
        Conditions(tempo_thresholds=(1.5,))


SLIDING = {
    "gemma2": {"sliding_window": 5},
    "gemma3_text": {"sliding_window": 5, "layer_types": ["sliding_attention", "full_attention"]},
}


@pytest.mark.parametrize("family", sorted(SLIDING))
@pytest.mark.parametrize("phenomenon", list(MEASURES))
def test_sliding_window_models_batch_ragged_prompts_and_still_match(phenomenon, family):
    """Ragged prompts (4 to 48 tokens) and ragged TEMPO sets in one batch, on models whose window (5 slots) is
    far shorter than prompt + steps, so the window cuts in every row: each row equals its prompt run alone."""
    from tempo_lab.tiny import tiny_random

    lm = tiny_random(family, **SLIDING[family])
    batch = [(i, lm.encode(p)) for i, p in enumerate(PROMPTS)]
    got = keyed(MEASURES[phenomenon](lm, batch, COND))
    want = keyed(looped(lm, phenomenon, batch, COND))
    assert got.keys() == want.keys()
    for key, row in want.items():
        for name, value in row.items():
            if isinstance(value, float) and not math.isnan(value):
                assert got[key][name] == pytest.approx(value, abs=1e-4), (key, name)
            elif not isinstance(value, float):
                assert got[key][name] == value, (key, name)


def test_a_ragged_sliding_window_batch_equals_each_prompt_alone_logit_for_logit(passes):
    """The lockstep on a sliding-window model against the model's own forward on each prompt alone: the
    prefill's logits and two ragged steps after it (rows feeding 1, 3 and 2 tokens, then 1, none and 2: a
    stopped row), as one pass per step or as passes over groups of rows, whose keys and values the next step
    must find in the batch cache."""
    from tempo_lab.forward import DecodingCore
    from tempo_lab.generators.loop import Feed
    from tempo_lab.tiny import tiny_random

    lm = tiny_random("gemma3_text", **SLIDING["gemma3_text"])
    prompts = [lm.encode(p) for p in PROMPTS[:3]]
    lock = Lockstep(DecodingCore(lm))
    logits = lock.prefill(prompts)
    steps = [[[5], [6, 7, 8], [9, 10]], [[11], None, [12, 13]]]

    class Fed:
        def __init__(self, row, t):
            self.row, self.t, self.logits = row, t, []

        def propose(self, step):
            ids = steps[step][self.row] if step < len(steps) else None
            if ids is None:
                return None
            start, self.t = self.t, self.t + len(ids)
            return Feed(torch.tensor([ids]), Layout(torch.arange(start, self.t, dtype=torch.float32)[None]))

        def accept(self, step, step_logits):
            self.logits.append(step_logits[0])

    policies = [Fed(r, p.shape[1]) for r, p in enumerate(prompts)]
    assert lock.run(policies, 3) == 2
    # the prefill, then a pass per step; grouped: 3 passes (1, 2, 3 tokens), then 2 (the stopped row in none)
    assert len(lock.passes) == {"one pass": 1 + 1 + 1, "grouped": 1 + 3 + 2}[passes]
    for r, (p, lg, pol) in enumerate(zip(prompts, logits, policies, strict=True)):
        fed = [ids for step in steps if (ids := step[r]) is not None]
        with torch.no_grad():
            own = widened(lm.model(torch.cat([p, torch.tensor([sum(fed, [])])], 1)).logits[0])
        assert_same(lg, own[p.shape[1] - 1])
        at = p.shape[1]
        for ids, got in zip(fed, pol.logits, strict=True):
            assert_same(got, own[at : at + len(ids)])
            at += len(ids)
