"""The layout shows the architecture: imports flow one way, torch only in interop, no pickle, small files."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "seqmodels"

# sub-package -> the sub-packages it may import from (besides itself and the top-level _version)
ALLOWED = {
    "core": set(),
    "cells": {"core"},
    "layers": {"core", "cells"},
    "text": {"core"},
    "data": {"core", "text"},
    "io": {"core"},
    "training": {"core"},
    "sampling": {"core"},
    "interop": {"core", "cells", "layers"},
    "models": {"core", "cells", "layers", "text", "data", "io", "training", "sampling"},
    "diagnostics": {"core", "cells", "layers", "text", "data", "io", "training", "sampling", "models"},
    "cli": {"core", "cells", "layers", "text", "data", "io", "training", "sampling", "models", "diagnostics",
            "interop"},
}


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if len(rel.parts) == 1:
            continue                                      # top-level __init__, __main__, _version, sampling
        yield rel.parts[0], path


def imported_subpackages(path: Path, own: str):
    """(sub-package of seqmodels, line) for every import of seqmodels code, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = ["seqmodels", *path.relative_to(PKG).parts[:-1]]
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            parts = (node.module or "").split(".")
        else:
            if node.level > len(package):
                raise AssertionError(f"{path}:{node.lineno}: relative import above the package")
            parts = package[:len(package) - node.level + 1] + ((node.module or "").split(".") if node.module else [])
        if parts[0] != "seqmodels":
            continue
        if len(parts) > 1:
            yield parts[1], node.lineno
        else:
            for alias in node.names:
                yield alias.name, node.lineno


@pytest.mark.parametrize("package, path", list(modules()), ids=lambda v: str(v))
def test_imports_flow_one_way(package, path):
    allowed = ALLOWED.get(package, set(ALLOWED)) | {package, "_version"}
    for sub, line in imported_subpackages(path, package):
        assert sub in allowed, f"{path.relative_to(PKG)}:{line} imports seqmodels.{sub} ({package} may import {sorted(allowed)})"


def test_torch_only_in_interop_and_no_pickle():
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            for name in names:
                assert name not in ("pickle", "cPickle", "dill", "joblib"), f"{path}: imports {name}"
                if name == "torch":
                    assert "interop" in path.parts, f"{path}: imports torch outside seqmodels.interop"


def test_files_stay_small():
    for path in PKG.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.relative_to(PKG)} has {lines} lines; split it (one concept per file)"
