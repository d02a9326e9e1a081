"""tempo_lab.timing: the one timer calls each function in turn and reports medians."""

from __future__ import annotations

import pytest

from tempo_lab import timing


def test_side_by_side_calls_each_function_and_reports_medians():
    calls = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1

        return fn

    seconds = timing.side_by_side({"a": count("a"), "b": count("b")}, repeats=3).medians
    assert calls == {"a": 4, "b": 4} and set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())
    timing.side_by_side({"a": count("a")}, repeats=2, warm_up=False)
    assert calls["a"] == 6
    with pytest.raises(ValueError, match="repeats"):
        timing.side_by_side({"a": count("a")}, repeats=0)
    table = timing.timing_table({"fast": 1.0, "slow": 4.0}, {"fast": 2, "slow": 8}, "slow")
    assert table.loc["fast", "slow / this"] == 4.0 and table.loc["slow", "forward passes"] == 8
