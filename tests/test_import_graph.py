"""The package's import graph: no cycle (no module imports, at module level, directly or through a chain, a
module that imports it back), no import that runs up CONTRIBUTING's layers, no forwarding aliases, and one
module ``__getattr__`` (the root's lazy names). Imports inside functions and ``TYPE_CHECKING`` blocks are the
way a lower layer names a higher one (the package root's lazy names, the dashboard's explorers)."""

from __future__ import annotations

import ast
import re
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


#: CONTRIBUTING.md's layers, lowest first: a module of a layer imports (at module level) only modules of its
#: own layer or below. Patterns are matched against the module's dotted name, first match wins; the display
#: modules (every ``display``, the view framework, the notebook helpers, the command line) sit on top.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("display", (r"\.display$", r"^tempo_lab\.plots$", r"^tempo_lab\.views(\.|$)",
                 r"^tempo_lab\.phenomena\.dashboard$", r"^tempo_lab\.notebook$", r"^tempo_lab\.cli$",
                 r"^tempo_lab\.plumbing\.(execution|series)$")),
    ("plumbing", (r"^tempo_lab\.plumbing(\.|$)",)),
    ("foundations", (r"^tempo_lab$", r"^tempo_lab\.(families|loaded|positions|masks|layout|tiny|bundled|gguf|"
                     r"models|forward|capture|labels|summaries|timing|results|stats|claims|prompts|corpus)$")),
    ("generators", (r"^tempo_lab\.generators(\.|$)", r"^tempo_lab\.reference$")),
    ("interventions", (r"^tempo_lab\.interventions(\.|$)",)),
    ("extension, caches, interop", (r"^tempo_lab\.(extension|caches|interop)(\.|$)",)),
    ("tpi, long context", (r"^tempo_lab\.(tpi|long_context)(\.|$)",)),
    ("phenomena", (r"^tempo_lab\.phenomena(\.|$)", r"^tempo_lab\.live(\.|$)")),
    ("studies", (r"^tempo_lab\.studies(\.|$)",)),
]
ORDER = ["plumbing", "foundations", "generators", "interventions", "extension, caches, interop",
         "tpi, long context", "phenomena", "studies", "display"]


def layer_of(module: str) -> str:
    """The layer of ``module`` (see :data:`LAYERS`); a module no pattern matches fails the test that asks."""
    for name, patterns in LAYERS:
        if any(re.search(p, module) for p in patterns):
            return name
    raise AssertionError(f"{module} is in no layer of tests/test_import_graph.py: give it one")


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every module-level import of a module of a higher layer: ``"a (layer) -> b (layer)"``."""
    rank = {name: i for i, name in enumerate(ORDER)}
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = layer_of(module), layer_of(target)
            if rank[b] > rank[a]:
                found.append(f"{module} ({a}) -> {target} ({b})")
    return found


def test_no_module_imports_a_higher_layer():
    """CONTRIBUTING's layer order, held by the module-level import graph: every module is in a layer and no
    import runs up (a lower layer names a higher one only inside a function, as the root's lazy names do)."""
    assert upward(import_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"tempo_lab.forward": {"tempo_lab.phenomena"}, "tempo_lab.phenomena": {"tempo_lab.forward"}}
    assert upward(graph) == ["tempo_lab.forward (foundations) -> tempo_lab.phenomena (phenomena)"]


def test_no_old_paths_and_no_module_getattr_but_the_roots():
    """No module forwards old paths (no aliases in ``sys.modules``) and no module but the package root serves
    names through a module ``__getattr__``: its lazy names keep ``import tempo_lab`` free of torch and
    transformers, so ``tempo-lab --help`` starts at once (measured on the 2-core AMD EPYC: ``import
    tempo_lab`` 0.03 s, ``import tempo_lab.models`` 4.7 s)."""
    served = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                served.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Assign) and any(ast.unparse(t) == "__getattr__" for t in node.targets):
                served.append(str(path.relative_to(ROOT)))
        writes = re.search(r"sys\.modules(\[[^]]*\]\s*=[^=]|\.setdefault)", path.read_text())
        assert not writes, f"{path} writes sys.modules"
    assert served == ["__init__.py"]


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
