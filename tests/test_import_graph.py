"""The package's import graph has no upward arrows: no module imports (at module level, directly or through a
chain) a module that imports it back. Imports inside functions and ``TYPE_CHECKING`` blocks are the way a
lower layer names a higher one (the package root's lazy names, a slice's display names)."""

from __future__ import annotations

import ast
from pathlib import Path

import tempo_lab

ROOT = Path(tempo_lab.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """``module -> the tempo_lab modules it imports at module level``."""
    paths = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the walk found the package's imports
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_renamed_modules_old_paths_work_for_a_release_with_a_warning_naming_the_new_one():
    import importlib

    import pytest

    import tempo_lab.caches
    import tempo_lab.interop
    import tempo_lab.interventions
    import tempo_lab.phenomena  # noqa: F401 - each package registers its moved modules' aliases
    from tempo_lab.plumbing import moved
    from tempo_lab.studies import folder

    assert moved.MOVED == {
        "tempo_lab.runner": "tempo_lab.plumbing.series",
        "tempo_lab.store": "tempo_lab.results",
        "tempo_lab.checks": "tempo_lab.plumbing.checks",
        "tempo_lab.execution": "tempo_lab.plumbing.execution",
        "tempo_lab.studies.runner": "tempo_lab.studies.run",
        "tempo_lab.studies.store": "tempo_lab.studies.folder",
        "tempo_lab.studies.plots": "tempo_lab.studies.figures",
        "tempo_lab.interventions.positions": "tempo_lab.interventions.edits",
        "tempo_lab.interop.layouts": "tempo_lab.interop.laid_out",
        "tempo_lab.caches.summaries": "tempo_lab.caches.tables",
        "tempo_lab.phenomena.base": "tempo_lab.phenomena.phenomenon",
    }
    for old, new in moved.MOVED.items():
        module = importlib.import_module(old)
        name = next(n for n in dir(importlib.import_module(new)) if not n.startswith("_"))
        with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
            value = getattr(module, name)
        assert value is getattr(importlib.import_module(new), name)
    with pytest.warns(DeprecationWarning, match="tempo_lab.studies.store moved to tempo_lab.studies.folder"):
        from tempo_lab.studies.store import StudyFolder
    assert StudyFolder is folder.StudyFolder


def test_no_two_modules_that_do_different_jobs_share_a_file_name():
    """The phenomenon slices' role modules (probe, display, study, summary) share names by design; every
    other file name is one module's."""
    roles = {"probe", "display", "study", "summary", "__init__"}
    names: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.stem not in roles:
            names.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    shared = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not shared, shared
