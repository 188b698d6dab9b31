"""The package's layers: imports point one way, down the list, and never round in a cycle.

A module imports only from its own folder or from folders earlier in LAYERS (root modules
such as eavatar/config.py sit at the bottom). Lazy imports inside functions count too.
"""

import subprocess
import sys

import pytest

from eavatar.provenance import PACKAGE_ROOT, imported_modules

#: Bottom to top; folders on one line form one layer.
LAYERS = [
    ("eavatar", "allocator", "config", "errors", "provenance", "quiet", "threads"),
    ("render",),
    ("data",),
    ("avatar",),
    ("metrics",),
    ("geometry",),
    ("tracking",),
    ("ns",),
    ("reports",),
    ("pipeline",),
    ("ui",),
    ("cli",),
]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        name = module_name(path)
        graph[name] = {m for m in imported_modules(path) if m != name}
    return graph


def test_every_folder_has_a_layer():
    assert {layer(m) for m in import_graph()} <= set(RANK), "add the new folder to LAYERS (and to README's Layout)"


def test_imports_point_down_the_layers():
    upward = [f"{m} -> {dep}" for m, deps in import_graph().items() for dep in deps if RANK[layer(dep)] > RANK[layer(m)]]
    assert not upward, "imports that point up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", ["eavatar.data", "eavatar.render", "eavatar.avatar", "eavatar.metrics"])
def test_the_library_loads_without_nerfstudio_widgets_or_the_cli(package):
    """Every module of the lower layers, imported in a fresh interpreter, pulls in none of them."""
    code = f"""
import importlib, pkgutil, sys
import {package} as p
for m in pkgutil.walk_packages(p.__path__, p.__name__ + "."):
    importlib.import_module(m.name)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("nerfstudio", "ipywidgets") or m.startswith("eavatar.cli")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
