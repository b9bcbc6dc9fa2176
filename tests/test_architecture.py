"""The stage rule of docs/architecture.md, enforced: a stage imports only earlier stages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "signlang"
STAGES = ("landmarks", "datasets", "features", "models", "training", "inference", "explain", "serve", "cli")
# Edges beside cli/ and serve/: they may import any stage, and no stage imports them.
EDGES = ("bench",)


def _signlang_imports(path: Path) -> set[str]:
    """Top-level signlang sub-packages that ``path`` imports (anywhere in the module, lazily too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "signlang" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("stage", STAGES[:-1])
def test_no_stage_imports_a_later_stage(stage: str) -> None:
    later = set(STAGES[STAGES.index(stage) + 1 :])
    offenders = {
        str(p.relative_to(SRC)): sorted(_signlang_imports(p) & later)
        for p in sorted((SRC / stage).rglob("*.py"))
        if _signlang_imports(p) & later
    }
    assert not offenders, f"stage {stage!r} imports later stages: {offenders}"


def test_every_stage_folder_is_known() -> None:
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_") and p.name not in ("configs", "pretrained")}  # data folders
    assert folders == set(STAGES) | set(EDGES)


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "cli"])
def test_no_stage_imports_an_edge(stage: str) -> None:
    offenders = {
        str(p.relative_to(SRC)): sorted(_signlang_imports(p) & set(EDGES))
        for p in sorted((SRC / stage).rglob("*.py"))
        if _signlang_imports(p) & set(EDGES)
    }
    assert not offenders, f"stage {stage!r} imports an edge: {offenders}"
