"""The notebooks in JupyterLab, in headless Chromium, as a user sees them.

Each committed notebook is opened as it is, executed (nbval runs it separately): its outputs must show every
view as its figure, never as ``VBox(...)`` text, and no error. Then the browser runs **one** cell in the
notebook's own kernel, appended at its end: the package calls that build its first view
(:mod:`recipes`), on the notebook's parameters with the small parameters of :mod:`tests.notebooks.small`
and the tiny random model on top (notebooks 06, 08 and 10 read their committed results). The heavy cells are
not re-run: nbval and papermill execute each notebook once each. The view must render (no widget error, no
figure shown as ``<Figure size ...>`` text, a kernel from this venv); then ArrowRight is pressed on its first
slider (ArrowLeft at its maximum), and

- the values in its hidden state element (``tempo-view-state``, :func:`tempo_lab.views.view_state`) change,
  and so does its figure's PNG if it has one;
- those values are the values the sliders' readouts show, with the moved one changed;
- the sentence the view shows, before and after the move, is exactly ``view.render(**values).text`` for the
  view rebuilt here, in the test process, by the same recipe on the same values.

Every wait is for an event on the page, bounded only by the hang limit (:data:`tests.helpers.HANG_S`). A
screenshot of each notebook, its view in sight, goes to ``build/screenshots/<notebook>.png``.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

import lab_page as lp
import pytest
from lab_harness import NOTEBOOKS, SCRATCH_NOTEBOOK
from recipes import RECIPES, Recipe

from tempo_lab.views import View
from tests.helpers import HANG_S
from tests.notebooks.small import PARAMS

pytestmark = pytest.mark.browser


def read_notebook(path: Path, recipe: Recipe) -> dict[str, Any]:
    """The literal assignments of the notebook's cell tagged ``parameters`` (as papermill reads them); also
    checks that the notebook still makes the recipe's ``shows`` call."""
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(recipe.shows in src for src in code), (
        f"{path.name}: no cell calls {recipe.shows!r}; update RECIPES in recipes.py"
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


def live_parameters(path: Path, recipe: Recipe, results_root: str) -> dict[str, Any]:
    """What the live cell rebuilds the view from: the notebook's parameters, the small ones on top, the tiny
    random model, and where the committed results are."""
    values = read_notebook(path, recipe)
    return {**values, **PARAMS[path.name[:2]], "model_name": "tiny-random", "results_root": results_root}


def live_cell(stem: str, values: dict[str, Any]) -> str:
    """The one cell the browser runs in a notebook's kernel: its first view, from ``values``."""
    return (
        "from recipes import rebuild\n"
        "from tempo_lab import notebook, views\n\n"
        "notebook.setup()\n"
        f"p = {values!r}\n"
        f"views.show(rebuild({stem!r}, p));"
    )


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


def check_kernel(server, name: str) -> None:
    """The notebook's session runs the python3 kernel, from this venv."""
    session = next(s for s in server.sessions() if s["path"] == name)
    assert session["kernel"]["name"] == "python3", f"{name}: kernel {session['kernel']['name']!r}"
    kernels = server.kernel_processes()
    assert kernels, f"{name}: no kernel process found under the server"
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    for k in kernels:
        exe = Path(k.cmdline()[0])
        assert exe.parent.resolve() == venv_bin, f"{name}: the kernel runs {exe}, not a python in {venv_bin}"


def check_outputs(page, name: str, deferred: list[str]) -> None:
    """No error output and no failed widget anywhere in the notebook; figures shown as text are deferred."""
    found = lp.problems(page)
    assert not found["errors"], f"{name}: error output:\n" + "\n---\n".join(found["errors"])
    assert not found["widget_errors"], f"{name}: widget failed to render: {found['widget_errors']}"
    if found["figures_as_text"]:
        deferred.append("figures shown as text, not images (matplotlib's inline display was not active): "
                        f"{found['figures_as_text']}")
    if found["stderr"]:
        print(f"\n{name}: stderr (not errors): {found['stderr']}")


def check_committed_outputs(page, name: str) -> None:
    """Opened without running, the saved views show as figures, never as widget text."""
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
    texts = [outputs.nth(i).inner_text() for i in range(outputs.count())]
    assert texts and not [t for t in texts if t.lstrip().startswith(("VBox(", "Tab("))], (
        f"{name}: a view shows as widget text: {[t[:80] for t in texts if 'VBox(' in t or 'Tab(' in t]}"
    )
    views = page.locator(".jp-Notebook .jp-Cell:has-text('views.show(') .jp-OutputArea-output img")
    assert views.count() >= 1, f"{name}: the saved view shows no figure"


def check_view_moves(page, name: str, box, view: View, screenshot: Path, deferred: list[str]) -> str:
    """The rendered view ``box`` shows ``view.render`` of its values, before and after its first slider moves;
    returns a line saying what moved."""
    assert box.count(), f"{name}: no view (controls + sentence + figure) rendered"
    box.locator(".tempo-view-text p").first.wait_for(timeout=HANG_S * 1000)
    lp.show_view(page, box)

    before_state = lp.wait_until(lambda: lp.view_state(box), HANG_S, f"{name}: the view's state")
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
        HANG_S, f"{name}: the view's state to change after {key} on slider {moved.label!r}",
    )
    after_values = after_state["values"]
    after_rendered = view.render(**after_values)
    after_line = lp.wait_until(
        lambda: (line := lp.output_text(box)) == after_rendered.text and line,
        HANG_S, f"{name}: the sentence after {key} on {moved.label!r}",
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
                                  HANG_S, f"{name}: the new figure")  # fmt: skip
        if isinstance(after_fig, str):
            deferred.append(f"the view's figure is not shown as an image after the move: {after_fig!r}")
        else:
            assert after_fig[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: the view's image is not a PNG"
            assert after_fig != before_fig, f"{name}: the view's image did not change with the slider"

    lp.show_view(page, box)
    page.screenshot(path=str(screenshot))
    return f"{moved.label}: {moved.readout} -> {after_states[0].readout}; {after_line}"


def test_harness_scratch_notebook(browser_context, lab_server, screenshot_dir: Path) -> None:
    """The harness itself, on a model-free notebook run whole: a view with an IntSlider and a FloatSlider."""
    from scratch_view import make_view

    path = lab_server.root / SCRATCH_NOTEBOOK
    view = make_view(read_notebook(path, Recipe("make_view(start)", lambda p: None))["start"])
    with lp.notebook_page(browser_context, lab_server, screenshot_dir / "FAILED_scratch.png") as page:
        lp.open_notebook(page, lab_server, path.name)
        state = lp.run_all_cells(page, path.name)
        assert not state["pending"], f"{path.name}: {state['pending']} code cells did not run: {state}"
        deferred: list[str] = []
        check_outputs(page, path.name, deferred)
        check_kernel(lab_server, path.name)
        line = check_view_moves(page, path.name, lp.first_view(page), view, screenshot_dir / "scratch.png",
                                deferred)  # fmt: skip
        print(f"\n{path.name}: {line}")
        assert not deferred, f"{path.name}:\n" + "\n".join(f"- {d}" for d in deferred)


@pytest.mark.parametrize("stem", list(RECIPES))
def test_notebook_in_browser(stem: str, browser_context, lab_server, screenshot_dir: Path) -> None:
    """Open the committed notebook (its saved outputs), run its first view's cell alone, move a slider."""
    path = NOTEBOOKS / f"{stem}.ipynb"
    assert path.exists(), f"{path} is missing"
    recipe = RECIPES[stem]
    t0 = time.monotonic()
    view = recipe.rebuild(live_parameters(path, recipe, str(NOTEBOOKS.parent / "results")))
    in_kernel = live_parameters(path, recipe, "../results")  # the lab's copy of results/, by the notebooks
    t_rebuild = time.monotonic() - t0
    with lp.notebook_page(browser_context, lab_server, screenshot_dir / f"FAILED_{stem}.png") as page:
        lp.open_notebook(page, lab_server, path.name)
        check_committed_outputs(page, path.name)
        cell = lp.run_new_cell(page, path.name, live_cell(stem, in_kernel))
        deferred: list[str] = []
        check_outputs(page, path.name, deferred)
        check_kernel(lab_server, path.name)
        box = lp.cell_view(page, cell)
        line = check_view_moves(page, path.name, box, view, screenshot_dir / f"{stem}.png", deferred)
        print(f"\n{path.name}: view rebuilt here in {t_rebuild:.1f} s, page checked in "
              f"{time.monotonic() - t0 - t_rebuild:.1f} s; {line}")  # a report, never a verdict
        assert not deferred, f"{path.name}:\n" + "\n".join(f"- {d}" for d in deferred)
