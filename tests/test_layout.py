"""The package's shape: few modules at the top, folders by role, small modules, imports that flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "sentiment"
MAX_TOP_LEVEL = 8  # modules directly in sentiment/, __init__.py (the Python API) included
MAX_LINES = 450
# What a part of the package may import of the others: the pipeline's order (config → data → model → training →
# evaluation → export → serving); the top-level modules are shared by all. training.experiment, the run from top to
# bottom, is the one module of training that evaluates (and teacher fits an anchor of evaluation's).
MAY_IMPORT = {
    "data": set(),
    "models": {"data"},
    "evaluation": {"data", "models"},
    "training": {"data", "models", "evaluation"},
    "export": {"data", "models", "evaluation", "serving"},
    "serving": {"data", "evaluation"},
    "study": {"data", "models", "training", "evaluation"},
    "commands": {"data", "models", "training", "evaluation", "export", "serving", "study"},  # the programs, on top of it all
    "__init__": {"serving"},  # the Python API (sentiment.load): the serving engine, as predict.py runs it
}
TOP_LEVEL_SHARED = {"artifacts", "cli", "config", "errors", "quiet", "rundir"}


def part_of(module: str) -> str:
    """The part of the package a dotted module name belongs to: a subpackage, ``models``, or a shared top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def project_imports(path: Path) -> set[str]:
    """Every ``sentiment`` module a file imports, at any depth, as dotted names (``from pkg import module`` counts the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sentiment")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sentiment":
            folder = ROOT / node.module.replace(".", "/")
            found |= {f"{node.module}.{a.name}" for a in node.names} if folder.is_dir() else {node.module}
    return found


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def test_few_modules_at_the_top_and_the_rest_in_folders_by_role():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == \
        {"data", "training", "evaluation", "export", "serving", "study", "commands"}


def test_no_module_is_too_long_to_live_in():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long


def test_subpackage_faces_define_nothing():
    for face in PACKAGE.glob("*/__init__.py"):
        body = [node for node in ast.parse(face.read_text()).body if not isinstance(node, ast.Expr)]  # a docstring only
        assert not body, face


def test_parts_import_only_what_comes_before_them():
    for name, path in modules().items():
        mine = part_of(name)
        for imported in project_imports(path):
            theirs = part_of(imported)
            if theirs in TOP_LEVEL_SHARED or theirs == mine or theirs == "":
                continue
            assert mine in MAY_IMPORT and theirs in MAY_IMPORT[mine], f"{name} imports {imported}"


def test_no_import_circle():
    graph = {name: {i for i in project_imports(path) if i in modules()} for name, path in modules().items()}
    for start in graph:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] - seen:
                assert nxt != start, f"{start} imports itself through {sorted(seen)}"
                seen.add(nxt)
                stack.append(nxt)


def test_shared_top_level_modules_import_no_part():
    for name in TOP_LEVEL_SHARED:
        imported = project_imports(PACKAGE / f"{name}.py")
        assert all(part_of(i) in TOP_LEVEL_SHARED for i in imported), (name, imported)
