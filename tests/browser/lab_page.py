"""Playwright steps on a JupyterLab page: open a notebook, run all cells or one new cell, read outputs, move a
slider.

Every wait is a wait for a condition on the page, never a fixed sleep, bounded only by the hang limit
(:data:`tests.helpers.HANG_S`): a slow or busy CPU makes a wait longer, never a failure.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_harness import LabServer, wait_until

from tests.helpers import HANG_S

# JavaScript run in the page. The notebook is the one in the active tab.
_CELL_STATE_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const cells = [...nb.querySelectorAll('.jp-CodeCell')];
  let running = 0, pending = 0, done = 0;
  for (const c of cells) {
    const src = (c.querySelector('.cm-content')?.textContent || '').trim();
    const prompt = (c.querySelector('.jp-InputArea-prompt')?.textContent || '').trim();
    if (prompt.includes('*')) running++;
    else if (/^\\[\\d+\\]:?$/.test(prompt)) done++;
    else if (src) pending++;
  }
  const stderr = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
  const errors = [...nb.querySelectorAll(stderr)]
    .filter(e => /Traceback|^\\w*(Error|Exception|Interrupt)\\b/m.test(e.innerText)).length;
  const indicator = document.querySelector(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {cells: cells.length, running, pending, done, errors, status: indicator?.dataset.status || null};
}"""

_PROBLEMS_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const out = {errors: [], widget_errors: [], figures_as_text: [], stderr: []};
  for (const e of nb.querySelectorAll('.jp-OutputArea-output')) {
    const text = e.innerText || '';
    const mime = e.dataset.mimeType;
    if (mime === 'application/vnd.jupyter.stderr') {
      if (/Traceback|^\\w*(Error|Exception|Interrupt)\\b/m.test(text)) out.errors.push(text.slice(0, 3000));
      else out.stderr.push(text.slice(0, 500));
    }
    if (/Error displaying widget|Model not found|Failed to load model class/.test(text))
      out.widget_errors.push(text.slice(0, 500));
    if (mime === 'text/plain' && /^\\s*<Figure size [\\d.]+x[\\d.]+ with \\d+ Axes>\\s*$/.test(text))
      out.figures_as_text.push(text.trim());
  }
  return out;
}"""


@dataclass
class SliderState:
    label: str
    readout: str
    aria_now: str | None
    aria_max: str | None


def open_notebook(page, server: LabServer, name: str) -> None:
    """Open ``name`` in a fresh workspace and wait until its kernel is connected and idle."""
    page.goto(server.url(f"lab/tree/{name}?reset"), timeout=HANG_S * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=HANG_S * 1000)
    deadline = time.monotonic() + HANG_S
    while True:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"{name}: unexpected dialog on opening: {dialog.first.inner_text()[:500]}")
        if page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count() and _session_idle(
            server, name
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: kernel not idle {HANG_S:.0f} s after opening (a hang); sessions: "
                               f"{server.sessions()}")
        page.wait_for_timeout(250)


def _session_idle(server: LabServer, name: str) -> bool:
    for s in server.sessions():
        if s["path"] == name and s.get("kernel"):
            return s["kernel"].get("execution_state") == "idle"
    return False


def cell_state(page) -> dict[str, Any] | None:
    return page.evaluate(_CELL_STATE_JS)


def run_all_cells(page, name: str) -> dict[str, Any]:
    """Run > Run All Cells from the menu bar, then wait until no cell runs and every code cell has run (or
    one failed, which stops the run). Returns the final cell state.

    A click that the page has not taken yet (JupyterLab still wiring its menus) starts nothing: the menu is
    clicked again every 30 s until cells start, so a slow page only waits longer."""
    before = cell_state(page)
    if before is None or before["cells"] == 0:
        raise AssertionError(f"{name}: no code cells on the page")

    def started() -> bool:
        s = cell_state(page)
        return bool(s and (s["running"] or s["done"] > before["done"] or s["errors"]))

    deadline = time.monotonic() + HANG_S
    while True:
        # focus the notebook, then Run > Run All Cells
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        try:
            wait_until(started, min(30.0, max(1.0, deadline - time.monotonic())), f"{name}: cells to start")
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: Run All started nothing in {HANG_S:.0f} s (a hang)") from None
            print(f"\n{name}: Run All has not started cells yet; clicking it again")

    def finished() -> dict[str, Any] | None:
        s = cell_state(page)
        if s and s["status"] == "idle" and not s["running"] and (not s["pending"] or s["errors"]):
            return s
        return None

    return wait_until(finished, HANG_S, f"{name}: all cells to finish", interval=0.5)


_APPEND_AND_RUN_JS = """source => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget.content;
  const index = nb.model.cells.length;
  nb.model.sharedModel.insertCell(index, {cell_type: 'code', source: source, metadata: {}});
  nb.activeCellIndex = index;
  nb.mode = 'command';
  app.commands.execute('notebook:run-cell');
  return index;
}"""

_ONE_CELL_JS = """index => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const cell = nb && nb.querySelectorAll('.jp-Cell')[index];
  if (!cell) return null;
  const indicator = document.querySelector(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {prompt: (cell.querySelector('.jp-InputArea-prompt')?.textContent || '').trim(),
          status: indicator?.dataset.status || null};
}"""


def run_new_cell(page, name: str, source: str) -> int:
    """Append a code cell holding ``source`` to the open notebook and run it alone (JupyterLab's own
    ``notebook:run-cell`` command, through the app the lab exposes); wait until it has run and the kernel is
    idle. Returns the cell's index. Nothing is saved: autosave is off."""
    index = page.evaluate(_APPEND_AND_RUN_JS, source)

    def done() -> dict[str, Any] | None:
        s = page.evaluate(_ONE_CELL_JS, index)
        return s if s and re.fullmatch(r"\[\d+\]:?", s["prompt"]) and s["status"] == "idle" else None

    wait_until(done, HANG_S, f"{name}: the appended cell to run", interval=0.5)
    return index


def cell_view(page, index: int):
    """The view box with a slider in the output of cell ``index``."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    return cell.locator(".tempo-view:has(.widget-slider)").first


def problems(page) -> dict[str, list[str]]:
    return page.evaluate(_PROBLEMS_JS)


def first_view(page):
    """The first view box with a slider (:func:`tempo_lab.views.show`: controls, sentence, figure, state)."""
    return page.locator(".jp-Notebook .tempo-view:has(.widget-slider)").first


def show_view(page, view) -> None:
    """Collapse the left sidebar and scroll the notebook so that the view's cell starts at the top."""
    left = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if left.count():
        left.first.click()
    view.evaluate("e => (e.closest('.jp-Cell') || e).scrollIntoView({block: 'start'})")


def sliders(view) -> list[SliderState]:
    states = []
    for s in view.locator(".widget-slider").all():
        handle = s.locator(".noUi-handle").first
        states.append(SliderState(
            label=s.locator(".widget-label").first.inner_text().strip(),
            readout=s.locator(".widget-readout").first.inner_text().strip(),
            aria_now=handle.get_attribute("aria-valuenow"),
            aria_max=handle.get_attribute("aria-valuemax"),
        ))
    return states


def output_text(view) -> str:
    """The view's sentence ('' while empty)."""
    out = view.locator(".tempo-view-text")
    return out.first.inner_text().strip() if out.count() else ""


_IMAGE_BYTES_JS = """async e => {
  const bytes = new Uint8Array(await (await fetch(e.src)).arrayBuffer());
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}"""


def output_figure(view) -> bytes | str | None:
    """The view's figure: the PNG bytes of its image (fetched from the page, whatever URL the widget gave
    it); the text when a figure was displayed as ``<Figure size ...>`` text instead; None when there is
    neither (yet)."""
    img = view.locator(".tempo-view-image")
    if img.count() and img.first.is_visible() and img.first.get_attribute("src"):
        return base64.b64decode(img.first.evaluate(_IMAGE_BYTES_JS))
    text = view.locator(".jp-OutputArea-output[data-mime-type='text/plain']")
    for t in text.all():
        if (content := t.inner_text().strip()).startswith("<Figure size"):
            return content
    return None


def move_first_slider(view) -> str:
    """Focus the first slider's handle, press ArrowRight (ArrowLeft when at the maximum); returns the key."""
    handle = view.locator(".widget-slider").first.locator(".noUi-handle").first
    now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
    key = "ArrowLeft" if now is not None and top is not None and float(now) >= float(top) else "ArrowRight"
    handle.focus()
    handle.press(key)
    return key


def view_state(view) -> dict[str, Any] | None:
    """The JSON the view keeps in its hidden ``tempo-view-state`` element (None before the first render)."""
    element = view.locator(".tempo-view-state")
    text = element.first.text_content() if element.count() else ""
    return json.loads(html.unescape(text)) if text else None


@contextmanager
def notebook_page(browser_context, server: LabServer, failed_shot: Path) -> Iterator[Any]:
    """A fresh page for one notebook check. On failure: a screenshot to ``failed_shot``, the page's errors
    and the server log's tail are printed; always: the page is closed and every kernel shut down."""
    failed_shot.unlink(missing_ok=True)
    page = browser_context.new_page()
    page.set_default_timeout(HANG_S * 1000)
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        yield page
    except BaseException:
        try:
            page.screenshot(path=str(failed_shot))
        except Exception:  # noqa: BLE001 - the page may be gone; the original error matters
            pass
        if page_errors:
            print(f"\npage errors: {page_errors}")
        print(f"\njupyter lab log (tail):\n{server.log_tail(30)}")
        raise
    finally:
        page.close()
        server.shutdown_kernels()
        wait_until(lambda: not server.kernel_processes(), HANG_S, "kernels to exit after shutdown")
