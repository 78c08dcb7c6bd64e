"""Rerun triggers that follow the package code a job runs (issue #10).

Snakemake re-runs a job when its script file changes, but the scripts are thin adapters: the code
that decides the numbers lives in this package, and a fix there would leave stale results without a
word. Each rule therefore carries `code`, a fingerprint of the package modules its job can import,
as a param: a changed param re-runs the job and everything downstream of it.

What counts as a change: the module's syntax tree without docstrings, so an edit to comments,
docstrings, blank lines or line wrapping re-runs nothing, and any edit to what Python executes re-runs
every job that can import the module. A job's modules are found statically from the script's
`import` statements, followed through the package (imports inside functions included), plus the
registry modules its wildcards select (`extra`: the erasure method or attack it runs, its guards),
which the steps load by name at run time. Reading the package never imports it (no torch at DAG time).
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "unerase"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(name: str) -> Path | None:
    """The source file of package module `name` ("unerase.erasure.esd"); None if it is not a module of the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _is_package(name: str) -> bool:
    path = module_file(name)
    return path is not None and path.name == "__init__.py"


def _with_parents(name: str) -> list[str]:
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def _parsed(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}:{err.lineno}: {err.msg} (fix it before running the workflow)") from None


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """The package modules the file at `path` imports (module `module`, for relative imports; None for a script)."""
    package = None
    if module is not None:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            # `from pkg import name`: name may be a submodule rather than an attribute
            found.update(f"{target}.{alias.name}" for alias in node.names if _is_package(target))
    return {m for name in found if name.split(".")[0] == PACKAGE for m in _with_parents(name) if module_file(m)}


@lru_cache(maxsize=None)
def closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    """Every package module reachable by imports from `roots` (module names or script paths), sorted."""
    seen: set[str] = set()
    todo: list[str] = []
    for root in roots:
        if root.endswith(".py"):
            todo.extend(imports_of(Path(root)))
        else:
            if module_file(root) is None:
                raise ValueError(f"'{root}' is not a module of the {PACKAGE} package")
            todo.extend(_with_parents(root))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imports_of(module_file(name), name) - seen)
    return tuple(sorted(seen))


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def module_digest(name: str) -> str:
    """sha256 of module `name`'s syntax tree without docstrings (comments and layout never reach the tree)."""
    tree = _strip_docstrings(ast.parse(module_file(name).read_text()))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def fingerprint(*roots: str) -> str:
    """One short digest of every package module `roots` can import: the param that re-runs a job when its code changes."""
    digest = hashlib.sha256()
    for name in closure(tuple(sorted(set(roots)))):
        digest.update(f"{name}:{module_digest(name)}\n".encode())
    return digest.hexdigest()[:16]
