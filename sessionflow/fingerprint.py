"""What a data stage's output depends on, hashed by content: the one cache key for the Prefect flow's data
tasks and for the CLI's "is the ingest still current?" check.

A stage's fingerprint is sha256 over:

- the stage's settings (its params.yaml sections),
- the **content** (sha256) of every input file, with its path relative to the project -- never mtimes, so a
  replaced file with the same size and time still counts as changed, and a touched but identical one not,
- the **source code the stage runs**: the stage runner module (sessionflow/stages.py) and every project
  module reachable by imports from the stage's component modules (found by parsing their imports), so an
  edit to ingest, expectations, features or anything they import invalidates the cached result.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from components.config import Settings
from components.datasets import sha256_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("components", "models", "sessionflow", "flows")
# The modules each stage runs (besides sessionflow/stages.py, the runner itself).
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "ingest": ("components.ingest", "components.datasets", "components.feedback_log"),
    "validate": ("components.validate", "components.expectations"),
    "featurize": ("components.features", "components.prior", "components.text_encoder", "components.vocab"),
}
# The params.yaml sections each stage reads.
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "ingest": ("data",),
    "validate": ("data", "validate"),
    "featurize": ("data", "features"),
}
RUNNER = "sessionflow.stages"


def module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of a project module (``components.ingest`` -> components/ingest.py), else None."""
    if name.split(".", 1)[0] not in PROJECT_PACKAGES:
        return None
    base = (root or PROJECT_ROOT).joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_names(nodes: Iterable[ast.AST]) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules imported by name
    return names


def _walk_runtime(node: ast.AST) -> Iterable[ast.AST]:
    """ast.walk without ``if TYPE_CHECKING:`` blocks (imports for type checkers only never run)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not _is_type_checking(child):
            yield from _walk_runtime(child)


def _imports(path: Path) -> set[str]:
    """Every module imported at run time by ``path`` (module level and inside functions)."""
    return _import_names(_walk_runtime(ast.parse(path.read_bytes(), filename=str(path))))


def _module_level_imports(path: Path) -> set[str]:
    return _import_names(ast.parse(path.read_bytes(), filename=str(path)).body)


def code_files(stage: str, root: Path | None = None) -> list[Path]:
    """Source files a stage runs: the runner (its module-level imports only: its other functions belong to
    other stages) plus the transitive project imports of the stage's modules."""
    root = root or PROJECT_ROOT
    if stage not in STAGE_MODULES:
        raise ValueError(f"unknown data stage {stage!r}; known: {sorted(STAGE_MODULES)}")
    runner = module_file(RUNNER, root)
    assert runner is not None
    seen: set[Path] = {runner}
    todo = [m for m in (*STAGE_MODULES[stage], *_module_level_imports(runner)) if module_file(m, root)]
    while todo:
        path = module_file(todo.pop(), root)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(m for m in _imports(path) if module_file(m, root) is not None)
        # a package's __init__ runs on any import of its submodules
        parent = path.parent / "__init__.py"
        if parent.is_file() and parent not in seen:
            todo.append(".".join(parent.parent.relative_to(root).parts))
    return sorted(seen)


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes, read every time (no stat-based shortcut: a file rewritten in place with the
    same size and mtime must still count as changed). Data files here are megabytes: milliseconds."""
    return sha256_file(path)


def files_digest(paths: Iterable[Path], root: Path) -> str:
    """One sha256 over files (and every file under folders): relative name + content digest each."""
    h = hashlib.sha256()
    for top in paths:
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for p in files:
            try:
                rel = p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                rel = str(p.resolve())
            h.update(rel.encode())
            h.update(b"\0")
            h.update(content_digest(p).encode() if p.is_file() else b"missing")
            h.update(b"\n")
    return h.hexdigest()


def stage_fingerprint(stage: str, settings: Settings, inputs: list[Path], root: Path) -> str:
    """sha256 of the stage's settings, the content of its inputs and the code it runs."""
    sections = {name: settings.model_dump(mode="json", by_alias=True)[name] for name in STAGE_SETTINGS[stage]}
    h = hashlib.sha256()
    h.update(f"stage={stage}\n".encode())
    h.update(json.dumps(sections, sort_keys=True).encode())
    h.update(f"\ninputs={files_digest(inputs, root)}\n".encode())
    h.update(f"code={files_digest(code_files(stage), PROJECT_ROOT)}\n".encode())  # PROJECT_ROOT: now
    return h.hexdigest()


__all__ = ["code_files", "content_digest", "files_digest", "module_file", "stage_fingerprint"]
