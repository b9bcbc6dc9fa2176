"""The import rule of docs/architecture.md, enforced on every file under src/signlang.

* shared helpers (``signlang/__init__.py``, ``_io.py``, ``_registry.py``) import no other signlang module
  but each other;
* a stage imports only itself, earlier stages and the helpers;
* edges (``bench/``, and the top-level entry point ``__main__.py``) may
  import any stage, and nothing outside an edge imports it but ``cli/`` (whose commands only parse
  arguments and call the edge);
* no module imports itself back through others: the module import graph (lazy imports inside
  functions included) has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "signlang"
HELPERS = ("__init__", "_io", "_registry")
STAGES = ("landmarks", "datasets", "features", "models", "training", "inference", "explain", "serve", "cli")
EDGES = ("bench", "__main__")
CLI = "cli"  # the one stage that may call an edge (``signlang benchmark ...`` runs bench/)
NOT_CODE = ("configs", "pretrained")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> str:
    """The helper, stage or edge a module belongs to (``signlang`` itself is the ``__init__`` helper)."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(module: str) -> set[str]:
    """signlang modules that ``module`` imports, anywhere in its file (lazy imports too)."""
    path = MODULES[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        for name in names:
            while name and name not in MODULES:  # "signlang.x.y.Name" -> the module "signlang.x.y"
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_file_belongs_to_a_helper_stage_or_edge() -> None:
    unknown = sorted(str(p.relative_to(SRC)) for m, p in MODULES.items() if _layer(m) not in (*HELPERS, *STAGES, *EDGES))
    assert not unknown, f"files outside every helper, stage and edge of docs/architecture.md: {unknown}"
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == set(STAGES) | {e for e in (*EDGES, *NOT_CODE) if (SRC / e).is_dir()}


def test_helpers_import_only_helpers() -> None:
    offenders = {m: sorted(GRAPH[m]) for m in MODULES if _layer(m) in HELPERS and any(_layer(i) not in HELPERS for i in GRAPH[m])}
    assert not offenders, f"shared helpers import stages: {offenders}"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_only_earlier_stages(stage: str) -> None:
    allowed = {*HELPERS, *STAGES[: STAGES.index(stage) + 1], *(EDGES if stage == CLI else ())}
    offenders = {
        m: sorted(i for i in GRAPH[m] if _layer(i) not in allowed)
        for m in MODULES
        if _layer(m) == stage and any(_layer(i) not in allowed for i in GRAPH[m])
    }
    assert not offenders, f"stage {stage!r} imports later stages or edges: {offenders}"


def test_nothing_imports_an_edge_from_outside() -> None:
    def outside(m: str, i: str) -> bool:
        return _layer(i) in EDGES and _layer(i) != _layer(m) and _layer(m) != CLI

    offenders = {m: sorted(i for i in GRAPH[m] if outside(m, i)) for m in MODULES if any(outside(m, i) for i in GRAPH[m])}
    assert not offenders, f"edges imported from outside: {offenders}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself works
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles (each list imports itself back): {cycles}"
