"""Computation that does not draw: every computing module of the package imports no plotting or widget library
(matplotlib, seaborn, ipywidgets); figures and widgets live in the display modules listed below.

One fresh interpreter imports each checked module in turn, with every ``tempo_lab`` module and every drawing
library removed from ``sys.modules`` before each import, and reports the drawing libraries each one loaded.
Beside it, the shape the split gives the package: every phenomenon slice is a package of the same roles, and
no module is longer than 350 lines."""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import subprocess
import sys

import tempo_lab

DRAWING = ("matplotlib", "seaborn", "ipywidgets")
#: the modules whose job is to draw or to show: figures, views, widgets
DISPLAY = {
    "tempo_lab.plots",
    "tempo_lab.views",
    "tempo_lab.views.base",
    "tempo_lab.views.panel",
    "tempo_lab.phenomena.dashboard",
    "tempo_lab.views.kinds",
    "tempo_lab.tpi.display",
}
#: the roles a phenomenon slice's modules may play (localisation's summary: what its stored study says)
ROLES = {"probe", "display", "study", "summary"}

PROBE = r"""
import importlib, json, sys
import torch, transformers, pandas  # loaded once: they draw nothing
names, drawing = json.loads(sys.argv[1]), tuple(json.loads(sys.argv[2]))
found = {}
for name in names:
    for key in list(sys.modules):
        if key.startswith("tempo_lab.") or key.split(".")[0] in drawing:
            del sys.modules[key]
    importlib.import_module(name)
    found[name] = [lib for lib in drawing if lib in sys.modules]
print(json.dumps(found))
"""


def _all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(tempo_lab.__path__, "tempo_lab."))


def _is_display(name: str) -> bool:
    return name in DISPLAY or name.endswith(".display")


def checked_modules() -> list[str]:
    return [name for name in _all_modules() if not _is_display(name)]


def _drawing_libraries(names: list[str]) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(names), json.dumps(DRAWING)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_computing_module_imports_a_drawing_library():
    names = checked_modules()
    assert len(names) > 60  # the foundations, generators, interventions, caches, extension, interop, tpi, ...
    for must in (
        "tempo_lab.interventions.patching",
        "tempo_lab.caches.study",
        "tempo_lab.tpi.probes",
        "tempo_lab.phenomena",  # the registry: its explorers load on first use
        "tempo_lab.phenomena.retroactive.probe",
        "tempo_lab.studies.run",
    ):
        assert must in names
    found = _drawing_libraries(names)
    drawing = {name: libs for name, libs in found.items() if libs}
    assert not drawing, f"computing modules that load a drawing library: {drawing}"


def test_the_display_modules_do_draw_and_the_probe_would_see_it():
    """The probe is not blind: the display modules it skips load matplotlib under the same check."""
    found = _drawing_libraries(
        ["tempo_lab.interventions.display", "tempo_lab.tpi.display",
         "tempo_lab.phenomena.retroactive.display"]
    )
    assert all("matplotlib" in libs for libs in found.values()), found


def test_every_phenomenon_slice_is_a_package_of_the_same_roles():
    from tempo_lab.phenomena import PHENOMENA

    for phenomenon in PHENOMENA:
        package = importlib.import_module(f"tempo_lab.phenomena.{phenomenon.name}")
        assert hasattr(package, "__path__"), f"{phenomenon.name} is a module, not a slice package"
        roles = {m.name for m in pkgutil.iter_modules(package.__path__)}
        assert roles <= ROLES and "display" in roles, (phenomenon.name, roles)
        for name in getattr(package, "DISPLAY", ()):  # its display names still load from the package
            assert callable(getattr(package, name)) or name.isupper(), (phenomenon.name, name)


def test_no_module_of_the_package_is_longer_than_350_lines():
    root = pathlib.Path(tempo_lab.__file__).parent
    lengths = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert max(lengths.values()) <= 350, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]
