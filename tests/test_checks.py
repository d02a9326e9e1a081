"""The input checks: one message per kind of bad input, naming the value; numpy scalars accepted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.phenomena.gap_dropout import gap_probe
from tempo_lab.plumbing import checks

PROMPT = "The cat sat"


def test_checks_name_the_bad_value(tiny):
    for bad in (0, -0.5, 1.5, float("nan"), True, "0.2", None):
        with pytest.raises(ValueError, match=r"threshold must be a probability in \(0, 1\]"):
            checks.probability("threshold", bad)
    assert checks.probability("threshold", 1) == 1.0
    for bad in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match="cap must be an integer >= 1"):
            checks.count("cap", bad)
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="gap must be a finite number >= 0"):
            checks.nonnegative("gap", bad)
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        checks.choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match="reaches position 512, past the model's context"):
        checks.in_context("this layout", 512, tiny.max_positions)
    checks.in_context("this layout", 511, tiny.max_positions)
    with pytest.raises(ValueError, match="prompt is empty"):
        tiny.encode_prompt("")
    with pytest.raises(ValueError, match="prompt ids must be a non-empty integer tensor"):
        tiny.encode_prompt(torch.zeros(1, 0, dtype=torch.long))
    text, ids = tiny.encode_prompt(tiny.encode("hey")[0])
    assert text == "hey" and ids.shape == (1, 3)


def test_numpy_scalars_and_arrays_are_accepted_everywhere(tiny):
    assert checks.probability("threshold", np.float32(0.25)) == 0.25
    assert checks.count("cap", np.int64(3)) == 3 and isinstance(checks.count("cap", np.int64(3)), int)
    assert checks.nonnegative("gap", np.float64(2.5)) == 2.5
    assert checks.as_list(np.array([0, 5])) == [0, 5] and checks.as_list(torch.tensor([1.5])) == [1.5]
    assert (
        checks.as_list(np.int64(4)) == [4]
        and checks.as_list("5") == ["5"]
        and checks.as_list(range(2)) == [0, 1]
    )
    assert tiny.token_id(np.int64(97)) == 97
    # the generators and the probe take numpy inputs and give the same results as with Python numbers
    retro = RetroactivePositionGenerator(tiny)
    a = retro.explore(PROMPT, gaps=np.array([0, 3]), token="x", top_k=np.int64(3))
    b = retro.explore(PROMPT, gaps=[0, 3], token="x", top_k=3)
    assert torch.equal(a.logits, b.logits) and a.gaps == b.gaps == [0.0, 3.0]
    t = tiny.encode(PROMPT).shape[1]
    sweep = retro.sweep(PROMPT, np.array([t - 0.5, t - 1]))
    assert sweep.positions == [t - 1, t - 0.5, t]
    comp = CompressedThoughtGenerator(tiny)
    kw = {"max_candidates": np.int64(2), "path_length": np.int64(2), "progress": False}
    c = comp.generate(PROMPT, gap=np.float32(2), threshold=np.float64(0.01), **kw)
    d = comp.generate(PROMPT, gap=2, threshold=0.01, max_candidates=2, path_length=2, progress=False)
    assert [p.token_ids for p in c.paths] == [p.token_ids for p in d.paths]
    par = ParallelTokenGenerator(tiny)
    e = par.generate(PROMPT, threshold=np.float32(0.05), max_steps=np.int64(3), progress=False)
    f = par.generate(PROMPT, threshold=0.05, max_steps=3, progress=False)
    assert e.text == f.text
    frame = gap_probe(tiny, PROMPT, "x", np.array([0, 2]), top_k=np.int64(2)).frame
    assert list(frame["gap"].unique()) == [0, 2]


def test_messages_show_numpy_values_as_numbers():
    with pytest.raises(ValueError, match=r"gap must be a finite number >= 0, got nan$"):
        checks.nonnegative("gap", np.float64("nan"))
    with pytest.raises(ValueError, match=r"cap must be an integer >= 1, got 0$"):
        checks.count("cap", np.int32(0))
    with pytest.raises(ValueError, match=r"gaps\[1\] = 0.5 is fractional, but this model takes .*: why"):
        checks.integral_position("gaps[1] = 0.5", np.float32(0.5), "why")
    checks.integral_position("gaps[1] = 0.5", 0.5, "")  # "": the model computes any position
    with pytest.raises(ValueError, match=r"seed must be an integer, got 1.5"):
        checks.seed(1.5)
    with pytest.raises(ValueError, match=r"top_k must be an integer in 1..9, got 10"):
        checks.integer_in("top_k", 10, 1, 9)
