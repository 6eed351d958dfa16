"""Imports go one way: components + models (pure) <- sessionflow (stages) <- flows (Prefect) <- cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "components": {"flows", "cli", "sessionflow", "bento", "prefect", "mlflow", "bentoml"},
    "models": {"flows", "cli", "sessionflow", "bento", "prefect", "mlflow", "bentoml"},
    "sessionflow": {"flows", "cli", "prefect"},
    "flows": {"cli"},
    "bento": {"flows", "cli", "sessionflow", "prefect", "mlflow"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
