"""Which of the package's source files decide a result: one walk of the imports.

The train stage's resume fingerprint hashes the sources a training imports, and a test holds
each DVC stage's code deps to the files its command imports, so neither goes stale when code
moves or a new module joins the loss.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent  # .../eavatar


def module_path(module: str) -> Path | None:
    """The source file of an ``eavatar`` module (a package's ``__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE_ROOT.name:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """``eavatar`` modules that ``path`` imports anywhere in its body (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules imported by name
    return {m for m in found if module_path(m) is not None}


@lru_cache(maxsize=None)
def module_closure(module: str) -> tuple[Path, ...]:
    """Every ``eavatar`` source file that ``module`` imports, directly or not, itself included,
    with the ``__init__.py`` of each package on the way."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = module_path(".".join(parts[:k]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path))
    return tuple(sorted(seen))


def code_hash(module: str) -> str:
    """sha256 over the sources of :func:`module_closure` (paths and contents)."""
    digest = hashlib.sha256()
    for path in module_closure(module):
        digest.update(path.relative_to(PACKAGE_ROOT.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


if __name__ == "__main__":  # python -m eavatar.provenance eavatar.cli.train: the files to list as deps
    import sys

    for p in module_closure(sys.argv[1]):
        print(p.relative_to(PACKAGE_ROOT.parent).as_posix())
