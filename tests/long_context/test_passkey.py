"""RULER's samples through lm-eval's task code, the three versions of a sample, and the two scores against
the model's own paths: greedy text against ``model.generate``, the value's log-probability against a plain
call of the model on the context and the value, at the version's positions."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tempo_lab.loaded import beyond_context
from tempo_lab.long_context.passkey import AROUND, START, VERSIONS, Tokens, answer
from tempo_lab.long_context.ruler import check_task, ruler_samples, score

pytestmark = pytest.mark.bundled
pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def lm():
    from tempo_lab import load_model

    return load_model(attn_implementation="sdpa")


@pytest.fixture(scope="module")
def samples(lm):
    return ruler_samples(lm, 2048, 3)


def test_samples_are_lm_evals_requests_and_deterministic(lm, samples):
    import random

    from lm_eval.tasks import TaskManager

    random.seed(0)  # lm-eval's own default index, as its command line builds the task (every task scanned)
    metadata = {"max_seq_lengths": [2048], "tokenizer": lm.tokenizer.name_or_path}
    task = TaskManager(metadata=metadata).load(["niah_single_1"])["tasks"]["niah_single_1"]
    task.build_all_requests(limit=3, rank=0, world_size=1)
    assert [s.context for s in samples] == [i.args[0] for i in task.instances]
    for s in samples:
        assert s.context.startswith("A special magic number is hidden within the following text.")
        assert s.context.endswith(s.doc["gen_prefix"])  # the request carries RULER's answer prefix
        assert s.context[s.needle[0] : s.needle[1]].endswith(f"is: {s.value}.")
        assert 0 <= s.depth <= 1 and s.value == s.doc["outputs"][0]
        assert score(s, f" {s.value}.") == 1.0 and score(s, " 1234.") == 0.0


def test_tasks_that_download_are_refused_naming_what_they_fetch():
    with pytest.raises(ValueError, match="downloads Paul Graham's essays"):
        check_task("niah_single_2")
    with pytest.raises(ValueError, match="unknown RULER task 'niah'"):
        check_task("niah")


def test_the_gap_version_at_the_sample_s_own_length_keeps_every_kept_token_at_its_position(lm, samples):
    for s in samples:
        tokens = Tokens.of(lm, s)
        version = tokens.gap(s.max_length)
        runs = tokens.runs()
        slots = torch.cat([torch.arange(a, b) for a, b in runs])
        assert torch.equal(version.layout.positions[0], slots.float())
        assert torch.equal(version.ids[0], tokens.ids[0, slots])
        assert version.distance == tokens.real().distance
        assert len(runs) <= 3 and version.ids.shape[1] < 400
        assert (tokens.needle[0] - AROUND) in slots or tokens.needle[0] < AROUND


def test_the_gap_version_puts_the_question_as_a_longer_sample_would(lm, samples):
    tokens = Tokens.of(lm, samples[0])
    real = tokens.real()
    for length in (8192, 65536):
        version = tokens.gap(length)
        ratio = length / samples[0].max_length
        assert version.distance == pytest.approx(real.distance * ratio, abs=1)  # the runs' starts scale
        assert version.question == pytest.approx((real.question - AROUND) * ratio + AROUND, abs=1)
        steps = version.layout.positions[0].diff()
        assert (steps >= 1).all() and (steps > 1).sum() == len(tokens.runs()) - 1  # jumps only between runs


def test_the_version_at_a_distance_keeps_the_needle_where_it_is_and_moves_the_question(lm, samples):
    for s in samples:
        tokens = Tokens.of(lm, s)
        a, real = tokens.needle[0], tokens.real()
        same = tokens.at_distance(int(real.distance))  # the real distance: every kept token where it was
        assert torch.equal(same.layout.positions, tokens.gap(s.max_length).layout.positions)
        assert torch.equal(same.ids, tokens.gap(s.max_length).ids)
        far = tokens.at_distance(16384)
        slots = torch.cat([torch.arange(x, y) for x, y in tokens.runs()])
        p = far.layout.positions[0]
        assert far.needle == a and far.question == a + 16384 and far.distance == 16384
        assert p[slots == tokens.question].item() == a + 16384
        assert torch.equal(p[slots <= a], slots[slots <= a].float())  # the needle and all before it: real
        assert set((p - slots).tolist()) == {0.0, a + 16384.0 - tokens.question}  # one jump, after the needle
        assert (p.diff() >= 1).all()


def test_a_needle_in_the_question_s_run_is_cut_from_it_and_too_short_a_distance_refused(lm, samples):
    tokens = Tokens.of(lm, samples[0])
    a, b = tokens.needle
    near = dataclasses.replace(tokens, question=b + 8)  # the question's run now holds the needle
    assert [x for x, y in near.runs() if x <= a < y and b + 8 < y]
    version = near.at_distance(4096)
    slots = torch.cat([torch.arange(x, y) for x, y in near.runs()])
    moved = version.layout.positions[0] - slots
    assert torch.equal(moved[slots < b], torch.zeros(int((slots < b).sum())))
    assert (moved[slots >= b] == a + 4096 - (b + 8)).all()
    with pytest.raises(ValueError, match=f"the least distance there is {b + 8 - a}"):
        near.at_distance(b + 7 - a)
    assert near.at_distance(b + 8 - a).distance == b + 8 - a
    with pytest.raises(ValueError, match="distance must be"):
        tokens.at_distance(0)


def test_a_version_by_name_is_the_method_of_that_name_and_an_unknown_name_is_refused(lm, samples):
    tokens = Tokens.of(lm, samples[0])
    direct = {"real": tokens.real(), "natural": tokens.real(), "gap": tokens.gap(4096),
              "distance": tokens.at_distance(4096), "start_far": tokens.start_far(4096)}  # fmt: skip
    assert set(direct) == set(VERSIONS)
    for name, want in direct.items():
        got = tokens.version(name, 4096)
        assert torch.equal(got.layout.positions, want.layout.positions) and torch.equal(got.ids, want.ids)
    with pytest.raises(ValueError, match="unknown version 'gaps'"):
        tokens.version("gaps", 4096)


def test_start_far_moves_only_the_start(lm, samples):
    tokens = Tokens.of(lm, samples[1])
    version = tokens.start_far(16384)
    p = version.layout.positions[0]
    assert p[:START].tolist() == list(range(START))
    assert version.question == 16384 and version.distance == tokens.real().distance
    assert torch.equal(p[START:].diff(), torch.ones(tokens.n - START - 1))
    with pytest.raises(ValueError, match="below the question's slot"):
        tokens.start_far(100)


def _plain_logprob(lm, ids, positions, value):
    """log p(value | context) from one plain call of the model on context + value at ``positions``."""
    whole = torch.cat([ids, value[:, :-1]], 1)
    after = positions[0, -1] + 1 + torch.arange(value.shape[1] - 1, dtype=positions.dtype)
    where = torch.cat([positions[0], after])[None]
    with torch.no_grad():
        mask = torch.ones_like(whole)
        logits = lm.model(input_ids=whole, position_ids=where, attention_mask=mask).logits[0]
    rows = torch.log_softmax(logits[ids.shape[1] - 1 :].double(), -1)
    return float(rows.gather(-1, value[0, :, None]).sum())


def test_the_answer_equals_the_model_s_own_generate_and_forward(lm, samples):
    tokens = Tokens.of(lm, samples[2])
    real = tokens.real()
    found = answer(lm, real, tokens, max_new=12)  # the value's 7 digits, "." and more
    with torch.no_grad():
        mask = torch.ones_like(tokens.ids)
        out = lm.model.generate(tokens.ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                pad_token_id=lm.tokenizer.eos_token_id)  # fmt: skip
    text = lm.tokenizer.decode(out[0, tokens.n :], skip_special_tokens=True)
    assert found.text == text
    assert found.score == score(samples[2], text)
    want = _plain_logprob(lm, tokens.ids, real.layout.positions, tokens.value)
    assert found.logprob == pytest.approx(want, abs=1e-3)


def test_the_gap_versions_log_probability_equals_a_plain_call_at_its_positions(lm, samples):
    """The model called directly with a gap version's ``position_ids`` and a 2D all-ones mask (its own
    causal path) gives the same log-probability of the value."""
    tokens = Tokens.of(lm, samples[0])
    for version in (tokens.gap(2048), tokens.gap(32768), tokens.at_distance(32768)):
        with beyond_context(lm):  # 32k is past SmolLM2's 8,192: the plain model run there, as the study does
            found = answer(lm, version, tokens, max_new=2)
        want = _plain_logprob(lm, version.ids, version.layout.positions, tokens.value)
        assert found.logprob == pytest.approx(want, abs=1e-3)


def test_the_live_control_rescores_a_sample_as_the_study_does(lm, samples):
    from tempo_lab.extension.methods import Method
    from tempo_lab.long_context.display import passkey_view

    view = passkey_view(lm, samples[:2])
    shown = view.render(sample=1, method="yarn", distance=16384).state
    tokens = Tokens.of(lm, samples[1])
    with Method.for_length(lm, "yarn", 16384).applied(lm):
        want = answer(lm, tokens.gap(16384), tokens, max_new=12)
    assert shown["score"] == want.score and shown["logprob"] == round(want.logprob, 4)
    assert shown["distance"] == tokens.gap(16384).distance < 16384  # D spans the positions; not the distance
    assert "error" in view.render(sample=0, method="yarn", distance=0).state  # refused, named, not raised
