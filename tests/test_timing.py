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


def test_machine_names_the_instruction_sets_torch_dispatches_to():
    import torch

    found = timing.machine()
    assert found["threads"] == torch.get_num_threads() and found["cores"] >= 1 and found["cpu"]
    assert set(found["isa"]) <= set(timing.MATMUL_ISA)
    # torch's own CPU detection is the independent path: its kernel level implies the flags
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        assert {"avx2", "avx512f"} <= set(found["isa"])
    elif capability == "AVX2":
        assert "avx2" in found["isa"]
