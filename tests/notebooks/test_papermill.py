"""Every notebook of the series rerun headless with papermill (through ``tempo-lab run``'s own code) with
non-default parameters: the tiny random model, another prompt, other gaps/thresholds, figures in a temporary
folder. Checks that no cell errors and that the injected parameters reached the results.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tempo_lab import notebook, runner
from tempo_lab.tiny import tiny_random

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(runner.NOTEBOOK_GLOB))
PROMPT = "Hi there"

# per notebook: the parameters injected, and key numbers they must show up as
PARAMS = {
    "01": {"prompt": PROMPT, "token": "!", "gaps": [0, 3, 7]},
    "02": {"prompt": "abcd", "start": -1.0, "stop": 1.0, "step": 0.5, "top_k": 3},
    "03": {
        "prompt": PROMPT,
        "token": "!",
        "gaps": [0, 4, 9],
        "max_gap": 12,
        "gap_step": 3,
        "timing_repeats": 1,
    },
    "04": {
        "prompt": "ab",
        "threshold": 0.05,
        "thresholds": [0.02, 0.05],
        "max_steps": 5,
        "timing_repeats": 1,
    },
    "05": {"prompt": PROMPT, "gaps": [0, 6], "threshold": 0.02, "path_length": 4, "timing_repeats": 1},
    # 06, 08 and 09 also get a temporary results folder, and 06 a second model (see ``runs``)
    "06": {"prompt": "Once upon a time", "n": 18, "batch_size": 6, "conditions": {"retro_gaps": [0, 4, 9]}},
    "07": {
        "prompt": "ab",
        "threshold": 0.05,
        "max_steps": 6,
        "prune_thresholds": [0.2, 0.4],
        "prune_threshold": 0.4,
    },
    "08": {
        "prompt": "Th",
        "retrain": True,
        "steps": 3,
        "seeds": [0, 1],
        "dim": 8,
        "layers": 1,
        "recall_steps": 2,
        "probe_prompts": 3,
        "shifts": [0, 1, 4],
    },
    "09": {
        "prompt": PROMPT,
        "token": "!",
        "gaps": [7, 20],
        "half_prompt": "abcd",
        "set_prompt": "ab",
        "threshold": 0.05,
        "set_steps": 2,
        "head_prompt": "Once upon a time there was",
        "bands": 4,
        "search_token": "e",
        "search_max_gap": 30,
        "half_search_token": "e",
        "n": 6,
        "batch_size": 3,
    },
}
EXPECTED = {
    "01": {"prompt": PROMPT, "token": "!", "gaps": [0, 3, 7]},
    "02": {"prompt": "abcd", "positions": [2.0, 4.0, 5]},
    "03": {"prompt": PROMPT, "token": "!", "gaps": [0, 4, 9]},
    "04": {"prompt": "ab", "threshold": 0.05},
    "05": {"prompt": PROMPT, "gaps": [0, 6]},
    "06": {"prompt": "Once upon a time", "prompts": 18},
    "07": {"prompt": "ab", "threshold": 0.05},
    "08": {"prompt": "Th"},
    "09": {"prompt": PROMPT, "token": "!", "gaps": [7, 20], "prompts": 6},
}


def test_the_series_is_complete():
    assert [p.name[:2] for p in NOTEBOOKS] == sorted(PARAMS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the whole series once, on the tiny model, into a temporary folder."""
    tmp = tmp_path_factory.mktemp("papermill")
    fig_dir = tmp / "figures"
    plans = {
        path: {"model_name": "tiny-random", "fig_dir": str(fig_dir), **PARAMS[path.name[:2]]}
        for path in NOTEBOOKS
    }
    second = tmp / "tiny-gemma2"  # notebook 06's second model: a saved folder of another family
    made = tiny_random("gemma2", seed=3)
    made.model.save_pretrained(second)
    made.tokenizer.save_pretrained(second)
    for path in NOTEBOOKS:
        if path.name[:2] == "06":
            plans[path]["results"] = str(tmp / "results_06")
            plans[path]["compare_with"] = str(second)
            plans[path]["compare_results"] = str(tmp / "results_06_second")
        if path.name[:2] == "08":
            plans[path]["tpi_results"] = str(tmp / "results_08")
        if path.name[:2] == "09":
            plans[path]["results"] = str(tmp / "results_09")
    results = runner.run_series(
        NOTEBOOKS, plans, out_dir=tmp / "out", progress=False, cell_timeout=600, echo=lambda *_: None
    )
    return {r.name[:2]: r for r in results}, fig_dir


@pytest.mark.parametrize("number", sorted(PARAMS))
def test_notebook_runs_with_injected_parameters(runs, number):
    results, fig_dir = runs
    run = results[number]
    assert run.error is None, run.error
    nb = nbformat.read(str(run.output), 4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert (
        len(injected) == 1 and "model_name = " in injected[0].source and "tiny-random" in injected[0].source
    )
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the injected parameters reached the results
    assert run.key_numbers["model"] == "tiny-random"  # 08 trains its own models, and only echoes it
    for key, value in EXPECTED[number].items():
        assert run.key_numbers[key] == value, key
    if number == "06":  # the second model measured the same prompts, and each claim was decided on it
        second = run.key_numbers["second_model"]
        assert second["model"].endswith("tiny-gemma2") and second["prompts"] == 18
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
    _, fig_dir = runs
    for png in fig_dir.glob("*.png"):
        committed = ROOT / "figures" / png.name
        assert committed.exists(), f"{png.name} has no committed counterpart in figures/"
        assert committed.read_bytes() != png.read_bytes()


@pytest.mark.bundled
def test_the_series_runs_unchanged_on_a_saved_tiny_gemma2_folder(tmp_path, capsys):
    """``tempo-lab run --model <folder>`` on a tiny random Gemma2 (sliding window 4, soft-capping, no SDPA)
    saved with the bundled tokenizer, so that the notebooks' default prompts and tokens apply: every notebook
    of the series runs with its default parameters (figures go to a temporary folder)."""
    from tempo_lab import cli, load_model

    folder = tmp_path / "tiny-gemma2"
    made = tiny_random("gemma2", sliding_window=4, tokenizer=load_model().tokenizer)
    made.model.save_pretrained(folder)
    made.tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    argv = ["run", "--model", str(folder), "--out", str(out), "-p", "fig_dir", str(tmp_path / "fig")]
    # notebook 06: 24 prompts into a temporary folder (302, one at a time here, would dominate the suite)
    argv += ["-p", "n", "24", "-p", "results", str(tmp_path / "study")]
    rc = cli.main([*argv, "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert f"{len(NOTEBOOKS)}/{len(NOTEBOOKS)} notebooks ran" in text
    for path in NOTEBOOKS:
        nb = nbformat.read(str(out / path.name), 4)
        assert notebook.read_key_numbers(nb)["model"] == str(folder)
