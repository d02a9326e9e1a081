"""``benchmarks/gpu.py --smoke`` on the test session's device (``pytest --device``; the CPU by default), so
the one-shot GPU script cannot rot between the sessions that have a GPU: it runs end to end on tiny shapes
and what it measures holds (every family of the matrix equals its own forward, the patching sweep equals the
naive loop, each study wrote rows), and its JSON names the device."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gpu_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, device) -> dict:
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    returned = _gpu_benchmark().main(["--device", str(device), "--smoke", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))  # what it returns is what it wrote
    return written


def test_the_json_names_the_device_and_the_run(smoke, device):
    assert smoke["device"].startswith(str(device)) and smoke["smoke"] is True
    assert {"matrix", "peak", "study", "llama3_8b", "seconds", "machine", "tokenizer"} <= set(smoke)


def test_every_family_equals_its_own_forward_on_the_device(smoke):
    from tempo_lab.tiny import MATRIX

    worst = smoke["matrix"]["max_difference"]
    assert set(worst) == set(MATRIX)
    assert max(worst.values()) < 2e-5, worst  # tests/test_families.py's tolerance


def test_the_patching_sweep_equals_the_naive_loop_and_every_study_wrote_rows(smoke):
    big = smoke["llama3_8b"]
    layers, heads = big["shape"]["num_hidden_layers"], big["shape"]["num_attention_heads"]
    sampled = len({0, layers // 2, layers - 1}) * len({0, heads // 2, heads - 1})  # gpu.py's sample of sites
    assert big["patching"]["sites"] == sampled and big["patching"]["max_difference"] < 1e-2  # bfloat16 logits
    assert big["prefill"]["gflop"] > 0 and big["gradient"]["ratio"] > 0
    studies = [*smoke["study"].values(), big["study"]]
    assert set(smoke["study"]) == {"float32 eager", "float32 sdpa", "bfloat16 eager", "bfloat16 sdpa"}
    for done in studies:
        assert done["prompts"] == 4 and done["rows"] and all(n > 0 for n in done["rows"].values()), done
    assert all(rate > 0 for part in smoke["peak"].values() for rate in part["shapes"].values())
