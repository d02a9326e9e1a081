"""The notebooks in JupyterLab, in headless Chromium, as a user sees them.

Opened without running, every committed notebook shows its views as their figures, never as ``VBox(...)``
text. Then for each notebook with a view: Run > Run All Cells, wait until every cell has run, and check that
no cell shows an error, that no widget failed to render and that no figure is shown as ``<Figure size ...>``
text. Then take the first view (the first view box with a slider, see :func:`tempo_lab.views.show`), press
ArrowRight on its first slider (ArrowLeft at its maximum) and check that

- the values in its hidden state element (``tempo-view-state``, :func:`tempo_lab.views.view_state`) changed,
  and so did its figure's PNG if it has one;
- those values are the values the sliders' readouts show, with the moved one changed;
- the sentence the view shows, before and after the move, is exactly ``view.render(**values).text`` for a
  view rebuilt here, in the test process, from the notebook's ``parameters`` cell with the same package calls
  the notebook makes (the ``RECIPES`` table below).

A screenshot of each notebook, its view in sight, goes to ``build/screenshots/<notebook>.png``.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lab_page as lp
import pytest
from lab_harness import NOTEBOOKS, SCRATCH_NOTEBOOK

from tempo_lab.views import View

pytestmark = pytest.mark.browser

RUN_TIMEOUT_S = 420  # Run All on 2 CPU cores takes 20-60 s per notebook with the bundled model
SLIDER_TIMEOUT_S = 120  # a slider step only re-renders results computed earlier


# ---- how to rebuild each notebook's first view from its parameters ---------------------------------------
# Each recipe takes the values of the notebook's parameters cell and makes the same package calls as the
# notebook, here in the test process, returning the same View. ``shows`` is the notebook's call that builds
# the view; the test checks that the notebook still contains it, so a recipe cannot silently drift from it.


@dataclass(frozen=True)
class Recipe:
    shows: str
    rebuild: Callable[[dict[str, Any]], View]


def _scratch(p: dict[str, Any]) -> View:
    from scratch_view import make_view

    return make_view(p["start"])


def _nb01(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import gap_dropout

    result = gap_dropout.gap_probe(load_model(p["model_name"]), p["prompt"], p["token"], p["gaps"])
    return gap_dropout.view(result)


def _nb02(p: dict[str, Any]) -> View:
    from tempo_lab import load_model, positions
    from tempo_lab.generators import RetroactivePositionGenerator
    from tempo_lab.phenomena import fractional

    lm = load_model(p["model_name"])
    natural = lm.encode_prompt(p["prompt"])[1].shape[1] - 1  # start and stop are offsets from it
    grid = positions.grid(natural + p["start"], natural + p["stop"], p["step"])
    return fractional.view(RetroactivePositionGenerator(lm).sweep(p["prompt"], grid))


def _nb03(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.generators import RetroactivePositionGenerator
    from tempo_lab.phenomena import retroactive

    lm = load_model(p["model_name"])
    gaps = list(range(0, p["max_gap"] + 1, p["gap_step"]))
    gen = RetroactivePositionGenerator(lm)
    sweep = gen.explore(p["prompt"], gaps=gaps, token=p["token"], top_k=p["top_k"])
    return retroactive.view(sweep, lm)


def _nb04(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import isolation

    thresholds = sorted(set(p["thresholds"]) | {p["threshold"]})
    pairs = isolation.parallel_pairs(load_model(p["model_name"]), p["prompt"], thresholds,
                                     max_steps=p["max_steps"], max_set_size=p["max_set_size"])  # fmt: skip
    return isolation.view(pairs)


def _nb05(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import compressed

    runs = compressed.compressed_runs(
        load_model(p["model_name"]), p["prompt"], p["gaps"], threshold=p["threshold"],
        max_candidates=p["max_candidates"], path_length=p["path_length"],
    )  # fmt: skip
    return compressed.view(runs)


def _nb06(p: dict[str, Any]) -> View:
    from tempo_lab.phenomena import retroactive
    from tempo_lab.studies import read_study

    return retroactive.study_view(read_study(NOTEBOOKS.parent / "results" / "06_claims_at_scale"))


def _nb07(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import pruning

    thresholds = sorted(set(p["prune_thresholds"]) | {p["prune_threshold"]})
    runs = pruning.pruning_runs(load_model(p["model_name"]), p["prompt"], thresholds, window=p["window"],
                                threshold=p["threshold"], max_steps=p["max_steps"])  # fmt: skip
    return pruning.view(runs)


def _nb08(p: dict[str, Any]) -> View:
    from tempo_lab.tpi import probes
    from tempo_lab.tpi.corpus import load_corpus
    from tempo_lab.tpi.runs import checkpoint

    folder = NOTEBOOKS.parent / "results" / "08_tpi"
    models = {name: checkpoint(name, folder) for name in ("rope", "tpi", "tpi-decay")}
    text = bytes(load_corpus().val[:96].tolist()).decode("utf-8", errors="replace")  # the first probe snippet
    return probes.shift_view(models, text)


def _nb09(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.generators import ParallelTokenGenerator
    from tempo_lab.phenomena import localisation as loc

    lm = load_model(p["model_name"])
    locs = {}
    for gap in p["gaps"]:
        ids, clean, corrupt = loc.retro_pair(lm, p["prompt"], p["token"], gap)
        locs[f"gap {gap:g}"] = loc.localise(lm, ids, clean, corrupt, metric=p["metric"], name=f"gap {gap:g}")
    for step in p["half_steps"]:
        ids, clean, corrupt = loc.half_step_pair(lm, p["half_prompt"], step)
        locs[f"+{step:g}"] = loc.localise(lm, ids, clean, corrupt, metric=p["metric"], name=f"+{step:g}")
    run = ParallelTokenGenerator(lm).generate(p["set_prompt"], threshold=p["threshold"],
                                              max_steps=p["set_steps"] + 2, progress=False)
    ids, visible, isolated = loc.set_pair(run, p["set_steps"])
    locs["isolated vs visible"] = loc.localise(lm, ids, visible, isolated, metric=p["metric"],
                                               name="isolated vs visible")  # fmt: skip
    return loc.view(locs)


SCRATCH = Recipe("make_view(start)", _scratch)
RECIPES: dict[str, Recipe] = {
    "01_gap_attention_dropout": Recipe("views.show(gap_dropout.view(result))", _nb01),
    "02_decimal_positions": Recipe("views.show(fractional.view(sweep))", _nb02),
    "03_retroactive_exploration": Recipe("views.show(retroactive.view(sweep, lm))", _nb03),
    "04_isolated_vs_visible_attention": Recipe("views.show(isolation.view(pairs))", _nb04),
    "05_compressed_thoughts": Recipe("views.show(compressed.view(runs))", _nb05),
    "06_claims_at_scale": Recipe("views.show(phenomena.retroactive.study_view(study))", _nb06),
    "07_retroactive_pruning_and_hidden_sets": Recipe("views.show(pruning.view(runs))", _nb07),
    "08_tpi_vs_rope": Recipe("views.show(probes.shift_view(models, text))", _nb08),
    "09_where_position_acts": Recipe(
        'views.show(loc.view({**comma, **half, "isolated vs visible": sets}))', _nb09
    ),
}


def read_notebook(path: Path, recipe: Recipe) -> dict[str, Any]:
    """The literal assignments of the notebook's cell tagged ``parameters`` (as papermill reads them); also
    checks that the notebook still makes the recipe's ``shows`` call."""
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(recipe.shows in src for src in code), (
        f"{path.name}: no cell calls {recipe.shows!r}; update RECIPES in {Path(__file__).name}"
    )
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    values: dict[str, Any] = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        assert isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets), (
            f"{path.name}: the parameters cell has a statement other than name = literal: {ast.unparse(node)}"
        )
        for t in node.targets:
            values[t.id] = ast.literal_eval(node.value)
    return values


# ---- the check, shared by the scratch notebook and the real ones -----------------------------------------


def _readout_matches(readout: str, value: Any) -> bool:
    """Whether a slider readout shows ``value``: ints as digits, floats with 2 decimals, options by str()."""
    readout = readout.replace("\u2212", "-")  # number readouts use the Unicode minus sign
    if isinstance(value, float):  # a FloatSlider shows 2 decimals, a SelectionSlider str(option)
        return readout in (str(value), f"{value:.2f}")
    return readout == str(value)


def _check_readouts(view: View, states: list[lp.SliderState], values: dict[str, Any], when: str) -> None:
    by_label = {(c.description or name): name for name, c in view.controls.items()}
    assert len(states) == len(view.controls), f"{when}: {len(states)} sliders on the page; view: {by_label}"
    for s in states:
        assert s.label in by_label, f"{when}: slider {s.label!r} is not a control of view {view.name!r}"
        name = by_label[s.label]
        assert name in values, f"{when}: control {name!r} missing from the view line values {values}"
        assert _readout_matches(s.readout, values[name]), (
            f"{when}: slider {s.label!r} reads {s.readout!r} but the view line says {name}={values[name]!r}"
        )


def check_notebook(page, server, name: str, view: View, screenshot: Path) -> None:
    """Open, run all, check outputs, move the first slider of the first view; ``view`` is its rebuilt twin."""
    t0 = time.monotonic()
    lp.open_notebook(page, server, name)
    session = next(s for s in server.sessions() if s["path"] == name)
    assert session["kernel"]["name"] == "python3", f"{name}: kernel {session['kernel']['name']!r}"

    state = lp.run_all_cells(page, name, RUN_TIMEOUT_S)
    t_run = time.monotonic() - t0
    found = lp.problems(page)
    assert not found["errors"], f"{name}: error output after Run All:\n" + "\n---\n".join(found["errors"])
    assert not state["pending"], f"{name}: {state['pending']} code cells did not run: {state}"
    assert not found["widget_errors"], f"{name}: widget failed to render: {found['widget_errors']}"
    # Problems that do not stop the slider check are collected and reported together at the end.
    deferred: list[str] = []
    if found["figures_as_text"]:
        deferred.append("figures shown as text, not images (matplotlib's inline display was not active): "
                        f"{found['figures_as_text']}")
    if found["stderr"]:
        print(f"\n{name}: stderr (not errors): {found['stderr']}")

    kernels = server.kernel_processes()
    assert kernels, f"{name}: no kernel process found under the server"
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    for k in kernels:
        exe = Path(k.cmdline()[0])
        assert exe.parent.resolve() == venv_bin, f"{name}: the kernel runs {exe}, not a python in {venv_bin}"

    box = lp.first_view(page)
    assert box.count(), f"{name}: no view (controls + sentence + figure) rendered"
    box.locator(".tempo-view-text p").first.wait_for(timeout=SLIDER_TIMEOUT_S * 1000)
    lp.show_view(page, box)

    before_state = lp.wait_until(lambda: lp.view_state(box), SLIDER_TIMEOUT_S, f"{name}: the view's state")
    before_line, before_fig = lp.output_text(box), lp.output_figure(box)
    assert before_state["view"] == view.name, f"{name}: the first view is {before_state['view']!r}"
    before_values = before_state["values"]
    before_rendered = view.render(**before_values)
    assert before_line == before_rendered.text == before_state["text"], (
        f"{name}: the page shows\n  {before_line!r}\nbut render({before_values}) gives\n"
        f"  {before_rendered.text!r}"
    )
    assert before_values == view.defaults(), f"{name}: view opened at {before_values}, not {view.defaults()}"
    if before_rendered.figure is not None and not isinstance(before_fig, bytes):
        deferred.append(f"the view's figure is not shown as an image before the move: {before_fig!r}")
    _check_readouts(view, lp.sliders(box), before_values, f"{name} before the move")

    moved = lp.sliders(box)[0]
    key = lp.move_first_slider(box)
    after_state = lp.wait_until(
        lambda: (st := lp.view_state(box)) and st["values"] != before_values and st,
        SLIDER_TIMEOUT_S, f"{name}: the view's state to change after {key} on slider {moved.label!r}",
    )
    after_values = after_state["values"]
    after_rendered = view.render(**after_values)
    after_line = lp.wait_until(
        lambda: (line := lp.output_text(box)) == after_rendered.text and line,
        SLIDER_TIMEOUT_S, f"{name}: the sentence after {key} on {moved.label!r}",
    )
    assert after_state["text"] == after_rendered.text, (
        f"{name}: after {key} on {moved.label!r} the state holds {after_state['text']!r}, "
        f"but render({after_values}) gives {after_rendered.text!r}"
    )
    changed = {k for k in after_values if after_values[k] != before_values.get(k)}
    moved_name = next(n for n, c in view.controls.items() if (c.description or n) == moved.label)
    assert changed == {moved_name}, f"{name}: moving {moved_name!r} changed {changed or 'nothing'}"
    after_states = lp.sliders(box)
    assert after_states[0].readout != moved.readout, f"{name}: the readout of {moved.label!r} did not change"
    _check_readouts(view, after_states, after_values, f"{name} after the move")

    if after_rendered.figure is not None:
        after_fig = lp.wait_until(lambda: (f := lp.output_figure(box)) != before_fig and f,
                                  SLIDER_TIMEOUT_S, f"{name}: the new figure")  # fmt: skip
        if isinstance(after_fig, str):
            deferred.append(f"the view's figure is not shown as an image after the move: {after_fig!r}")
        else:
            assert after_fig[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: the view's image is not a PNG"
            assert after_fig != before_fig, f"{name}: the view's image did not change with the slider"

    lp.show_view(page, box)
    page.screenshot(path=str(screenshot))
    print(f"\n{name}: Run All {t_run:.1f} s, all checks {time.monotonic() - t0:.1f} s; "
          f"{moved.label}: {moved.readout} -> {after_states[0].readout}; {after_line}")
    assert not deferred, f"{name}:\n" + "\n".join(f"- {d}" for d in deferred)


def run_case(browser_context, lab_server, screenshot_dir: Path, path: Path, recipe: Recipe) -> None:
    """Rebuild the view (fails fast on a stale recipe), then check the notebook in a fresh page; the page is
    closed and the notebook's kernel shut down whatever happens."""
    t0 = time.monotonic()
    view = recipe.rebuild(read_notebook(path, recipe))
    print(f"\n{path.name}: view rebuilt in the test process in {time.monotonic() - t0:.1f} s", end="")
    with lp.notebook_page(browser_context, lab_server, screenshot_dir / f"FAILED_{path.stem}.png") as page:
        check_notebook(page, lab_server, path.name, view, screenshot_dir / f"{path.stem}.png")
    print(f"\n{path.name}: {time.monotonic() - t0:.1f} s in all")


def test_harness_scratch_notebook(browser_context, lab_server, screenshot_dir: Path) -> None:
    """The harness itself, on a model-free notebook: a view with an IntSlider and a FloatSlider."""
    run_case(browser_context, lab_server, screenshot_dir, lab_server.root / SCRATCH_NOTEBOOK, SCRATCH)


@pytest.mark.parametrize("stem", list(RECIPES))
def test_notebook_in_browser(stem: str, browser_context, lab_server, screenshot_dir: Path) -> None:
    path = NOTEBOOKS / f"{stem}.ipynb"
    assert path.exists(), f"{path} is missing"
    run_case(browser_context, lab_server, screenshot_dir, path, RECIPES[stem])


@pytest.mark.parametrize("stem", list(RECIPES))
def test_a_committed_notebook_opened_without_running_shows_its_views_as_figures(
    stem: str, browser_context, lab_server, screenshot_dir: Path
) -> None:
    name = f"{stem}.ipynb"
    with lp.notebook_page(browser_context, lab_server, screenshot_dir / f"FAILED_static_{stem}.png") as page:
        lp.open_notebook(page, lab_server, name)
        outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
        texts = [outputs.nth(i).inner_text() for i in range(outputs.count())]
        assert texts and not [t for t in texts if t.lstrip().startswith(("VBox(", "Tab("))], (
            f"{name}: a view shows as widget text: {[t[:80] for t in texts if 'VBox(' in t or 'Tab(' in t]}"
        )
        views = page.locator(".jp-Notebook .jp-Cell:has-text('views.show(') .jp-OutputArea-output img")
        assert views.count() >= 1, f"{name}: the saved view shows no figure"
