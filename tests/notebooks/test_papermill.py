"""Every notebook of the series rerun headless with papermill (through ``tempo-lab run``'s own code), once, on
small parameters (:mod:`tests.notebooks.small`: few prompts, short runs, another prompt, other gaps and
thresholds), on a model of another family saved to a folder (a tiny random Gemma2: sliding window 4,
soft-capping, no SDPA) and figures in a temporary folder. Checks that no cell errors and that the injected
parameters reached the results.

This is the series' one papermill run per test session. nbval (``make test``) executes each committed
notebook once on its default parameters, and the browser suite runs only the cell each notebook's first view
needs (``tests/browser``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tempo_lab.plumbing import series
from tempo_lab.tiny import tiny_random
from tests.helpers import HANG_S
from tests.notebooks.small import EXPECTED, PARAMS

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(series.NOTEBOOK_GLOB))


def test_the_series_is_complete():
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(PARAMS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the whole series once, on a saved tiny Gemma2 folder, into a temporary folder; returns the runs by
    number, the figures' folder and the model folder."""
    tmp = tmp_path_factory.mktemp("papermill")
    fig_dir = tmp / "figures"
    folder = tmp / "tiny-gemma2"  # a saved folder of a sliding-window family, with tiny-random's tokenizer
    made = tiny_random("gemma2", seed=3, sliding_window=4)
    made.model.save_pretrained(folder)
    made.tokenizer.save_pretrained(folder)
    plans = {
        path: {"model_name": str(folder), "fig_dir": str(fig_dir), **PARAMS[path.name[:2]]}
        for path in NOTEBOOKS
    }
    for path in NOTEBOOKS:
        if path.name[:2] == "06":  # the second model: the tiny random Llama
            plans[path]["results"] = str(tmp / "results_06")
            plans[path]["compare_with"] = "tiny-random"
            plans[path]["compare_results"] = str(tmp / "results_06_second")
        if path.name[:2] == "08":
            plans[path]["tpi_results"] = str(tmp / "results_08")
        if path.name[:2] in ("09", "10", "11"):
            plans[path]["results"] = str(tmp / f"results_{path.name[:2]}")
    results = series.run_series(
        NOTEBOOKS, plans, out_dir=tmp / "out", progress=False, cell_timeout=int(HANG_S), echo=lambda *_: None
    )
    return {r.name[:2]: r for r in results}, fig_dir, folder


@pytest.mark.parametrize("number", sorted(PARAMS))
def test_notebook_runs_with_injected_parameters(runs, number):
    results, fig_dir, folder = runs
    run = results[number]
    assert run.error is None, run.error
    nb = nbformat.read(str(run.output), 4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert (
        len(injected) == 1 and "model_name = " in injected[0].source and str(folder) in injected[0].source
    )
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the injected parameters reached the results
    assert run.key_numbers["model"] == str(folder)  # 08 and 10 train their own models, and only echo it
    for key, value in EXPECTED[number].items():
        assert run.key_numbers[key] == value, key
    if number == "06":  # the second model measured the same prompts, and each claim was decided on it
        second = run.key_numbers["second_model"]
        assert second["model"] == "tiny-random" and second["prompts"] == 18
        assert set(second["verdicts"]) == set(run.key_numbers["verdicts"])
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert repr(EXPECTED[number]["prompt"]) in text
    # the interactive cell ran headless and produced its widget
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and "views.show(" in c.source]
    assert widget_cells and all(
        any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c.outputs)
        for c in widget_cells
    )
    # figures went to the injected folder
    figures = sorted(p.name for p in fig_dir.glob(f"{number}_*.png"))
    assert figures and all(p.startswith(run.name) for p in figures)


def test_figures_of_the_tiny_run_did_not_touch_the_committed_ones(runs):
    _, fig_dir, _ = runs
    # notebook 10 (b) draws the committed long-context study whatever the parameters: the same figure
    from_committed = {"10_beyond_the_trained_context_passkey.png", "10_beyond_the_trained_context_long_loss.png",
                      "10_beyond_the_trained_context_differences.png"}
    for png in fig_dir.glob("*.png"):
        committed = ROOT / "figures" / png.name
        assert committed.exists(), f"{png.name} has no committed counterpart in figures/"
        assert (committed.read_bytes() == png.read_bytes()) == (png.name in from_committed), png.name
