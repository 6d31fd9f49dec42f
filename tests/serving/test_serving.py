"""The serving runtime cannot import TensorFlow: held by reading every import of the package, and by importing it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SERVING = ROOT / "sentiment" / "serving"
# What serving code may import of the project: itself, and these TensorFlow-free modules.
ALLOWED_PROJECT_MODULES = {"sentiment.errors", "sentiment.artifacts", "sentiment.quiet", "sentiment.config",
                           "sentiment.data.fast_tokenizer", "sentiment.data.unicode_tables", "sentiment.evaluation.calibration", "sentiment.evaluation.explanation"}
FORBIDDEN_TOP_LEVEL = {"tensorflow", "keras", "tf_keras", "tensorflow_datasets", "sklearn"}


def imports_of(path: Path) -> set[str]:
    """Return every module a file imports, at any depth (inside functions too), as absolute dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if is_package(node.module):  # ``from sentiment.evaluation import calibration`` loads that module (package faces are empty)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
    return found


def is_package(module: str) -> bool:
    """Whether a dotted name of the project is a package (a folder), not a module."""
    return module.split(".")[0] == "sentiment" and (ROOT / module.replace(".", "/")).is_dir()


def test_no_serving_module_imports_tensorflow_or_a_module_that_could():
    modules = sorted(SERVING.glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "reviews", "exports", "litert_engine", "server", "protocol"}
    for path in modules:
        for name in imports_of(path):
            assert name.split(".")[0] not in FORBIDDEN_TOP_LEVEL, f"{path.name} imports {name}"
            if name.split(".")[0] == "sentiment" and name != "sentiment":
                assert name.startswith("sentiment.serving") or name in ALLOWED_PROJECT_MODULES, f"{path.name} imports {name}"
    for name in ALLOWED_PROJECT_MODULES:  # and those import nothing heavy when loaded
        source = ROOT / (name.replace(".", "/") + ".py")
        top_level = {n.split(".")[0] for node in ast.parse(source.read_text()).body
                     if isinstance(node, (ast.Import, ast.ImportFrom)) for n in imports_of_node(node)}
        assert not top_level & FORBIDDEN_TOP_LEVEL, name


def imports_of_node(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names one import statement loads."""
    return [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]


def test_importing_every_serving_module_leaves_tensorflow_unloaded():
    modules = [f"sentiment.serving.{p.stem}" for p in sorted(SERVING.glob("*.py")) if p.stem != "__init__"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
