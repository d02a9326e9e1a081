"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

Without ``/usr/bin/chromium`` (or without Playwright) every test here is skipped with the reason
``chromium not installed: apt-get install chromium``, and the end of the pytest report says so in one line.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from lab_harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HERE,
    NOTEBOOKS,
    SCRATCH_NOTEBOOK,
    SCREENSHOTS,
    SKIP_REASON,
    LabServer,
    chromium_available,
    copy_notebooks,
)

from tests.helpers import HANG_S

_skip_reason: str | None = None


def _why_skip() -> str | None:
    if not chromium_available():
        return SKIP_REASON
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed: pip install -e '.[dev]'"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _skip_reason
    mine = [it for it in items if HERE in Path(str(it.path)).resolve().parents]
    for it in mine:
        it.add_marker(pytest.mark.browser)
    reason = _why_skip()
    if reason and mine:
        _skip_reason = reason
        for it in mine:
            it.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter) -> None:
    if _skip_reason:
        terminalreporter.write_sep("=", "browser tests SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(f"tests/browser skipped: {_skip_reason}")


def write_scratch_notebook(folder: Path) -> None:
    """A model-free notebook for the harness self-test: parameters, then a view from scratch_view.py."""
    import nbformat

    shutil.copy(HERE / "scratch_view.py", folder / "scratch_view.py")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    params = nbformat.v4.new_code_cell("start = 3")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Harness self-test\nA view from `tests/browser/scratch_view.py`."),
        params,
        nbformat.v4.new_code_cell("%matplotlib inline\nimport sys\nprint(sys.executable)"),
        nbformat.v4.new_code_cell(
            "from scratch_view import make_view\nfrom tempo_lab.views import show\n\n"
            "view = make_view(start)\nshow(view);"
        ),
    ]
    nbformat.write(nb, folder / SCRATCH_NOTEBOOK)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` serving a temporary copy of notebooks/ (plus the scratch notebook); always stopped."""
    from tempo_lab.bundled import cache_dir

    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    if NOTEBOOKS.is_dir():
        copy_notebooks(NOTEBOOKS, root)
        # notebooks 06, 08 and 10 read ../results; a copy, so nothing a notebook does touches the checkout
        shutil.copytree(NOTEBOOKS.parent / "results", base / "results")
    else:
        root.mkdir()
    write_scratch_notebook(root)
    shutil.copy(HERE / "recipes.py", root / "recipes.py")  # the live cells of the notebook tests import it
    # The kernel reuses the converted bundled model (the temporary HOME would otherwise convert it again).
    server = LabServer(root=root, home=base / "home", extra_env={"TEMPO_LAB_CACHE": str(cache_dir())})
    try:
        server.start()
        yield server
    finally:
        left = server.stop()
        if left:
            pytest.fail(f"processes left behind after stopping jupyter lab: {left}")


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory):
    """Headless Debian Chromium with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            browsers = [p for p in psutil.process_iter() if _uses_profile(p, profile)]
            context.close()
    _, alive = psutil.wait_procs(browsers, timeout=HANG_S)  # returns as soon as they are gone
    for p in alive:
        p.kill()
    if alive:
        pytest.fail(f"chromium processes left after closing the browser: {[p.pid for p in alive]}")


def _uses_profile(proc: psutil.Process, profile: Path) -> bool:
    try:
        return any(str(profile) in arg for arg in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
