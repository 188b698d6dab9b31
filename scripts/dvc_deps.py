"""The code deps of every DVC stage that runs an ``eavatar`` command, from one walk of the imports.

    python scripts/dvc_deps.py            # rewrite the code deps of dvc.yaml, ablation/dvc.yaml, video/dvc.yaml
    python scripts/dvc_deps.py --check    # exit 1 (and say which) when a file would change

A stage whose ``cmd`` is ``eavatar <command> ...`` (or ``python -m eavatar.cli.main <command> ...``)
depends on exactly the package's files that its command module imports, directly or not, lazy
imports included: :func:`eavatar.provenance.module_closure` of ``eavatar.cli.<command>`` (of
``eavatar.cli.<command>.<subcommand>`` for a command with subcommands, e.g. ``eavatar ablation
run``; a trailing ``_`` where the name is taken, as ``import_`` and ``ablation.run_``). It is the walk the train stage's resume fingerprint hashes (``code_hash``), so DVC and the
resume see the same code. A folder stands for its files when every file DVC sees in it is in the
closure (``eavatar/ns`` for train), so the lists stay short without naming anything the stage does
not import. The deps that are not package code (data, meshes) are kept as written.
tests/test_dvc_deps.py holds every stage's list to its closure.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the package of this checkout

from eavatar.provenance import PACKAGE_ROOT, module_closure, module_path  # noqa: E402

#: What .dvcignore keeps out of DVC's hash of a folder (bytecode and numba caches).
IGNORED_DIRS = {"__pycache__"}
IGNORED_SUFFIXES = {".pyc", ".nbi", ".nbc"}
#: The trailing comment of a stage's first code dep: where the list comes from.
MARK = "# code: import closure of {module} (python scripts/dvc_deps.py)"


def dvc_files(root: Path = ROOT) -> list[Path]:
    """The project's pipeline files: dvc.yaml at the root and one folder down (ablation/, video/)."""
    return sorted(p for p in [root / "dvc.yaml", *root.glob("*/dvc.yaml")] if p.is_file() and not p.parent.name.startswith("."))


def command_words(cmd: str) -> list[str] | None:
    """The words after ``eavatar`` (or ``python -m eavatar.cli.main``) of a stage's command, else None."""
    try:
        tokens = shlex.split(cmd.strip().splitlines()[0]) if cmd.strip() else []
    except ValueError:
        return None
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    if tokens[:1] == [PACKAGE_ROOT.name]:
        return tokens[1:]
    if len(tokens) >= 3 and Path(tokens[0]).name.startswith("python") and tokens[1:3] == ["-m", f"{PACKAGE_ROOT.name}.cli.main"]:
        return tokens[3:]
    return None


def command_module(words: list[str]) -> str:
    """``eavatar.cli.<command>`` (``import`` -> ``import_``, ``refine-export`` -> ``refine_export``), and down
    into a command package by subcommand (``run`` -> ``run_``)."""
    words = [w for w in words if not w.startswith("-")]
    if not words:
        raise ValueError("no command after eavatar")
    base = f"{PACKAGE_ROOT.name}.cli"
    command = words[0].replace("-", "_")
    name = f"{base}.{command}" if module_path(f"{base}.{command}") else f"{base}.{command}_"
    if module_path(name) is None:
        raise ValueError(f"eavatar {words[0]}: no module {base}.{words[0]}")
    for word in words[1:]:  # `eavatar ablation run`: eavatar/cli/ablation/run_.py
        sub = next((m for m in (f"{name}.{word}", f"{name}.{word}_") if module_path(m)), None)
        if module_path(name).name != "__init__.py" or sub is None:
            break
        name = sub
    return name


def visible_files(folder: Path) -> set[Path]:
    """Files of ``folder`` (recursively) that DVC hashes: all but what .dvcignore leaves out."""
    return {p for p in folder.rglob("*") if p.is_file() and not IGNORED_DIRS & set(p.relative_to(folder).parts) and p.suffix not in IGNORED_SUFFIXES}


def compact(files: set[Path]) -> list[Path]:
    """``files`` with each folder whose visible files are all among them written as the folder (outermost first)."""
    out: list[Path] = []

    def walk(folder: Path) -> None:
        mine = {f for f in files if folder in f.parents}
        if not mine:
            return
        if folder != PACKAGE_ROOT and visible_files(folder) <= files:
            out.append(folder)
            return
        out.extend(sorted(f for f in mine if f.parent == folder))
        for sub in sorted({f.relative_to(folder).parts[0] for f in mine if f.parent != folder}):
            walk(folder / sub)

    walk(PACKAGE_ROOT)
    return out


def expand(paths: list[Path]) -> set[Path]:
    """Folders to their visible files (what DVC hashes), files as they are."""
    out: set[Path] = set()
    for p in paths:
        out |= visible_files(p) if p.is_dir() else {p}
    return out


def stage_specs(dvc_file: Path) -> dict[str, dict]:
    """Stage name -> {cmd, wdir (absolute), deps}; a ``foreach`` stage by its ``do`` body."""
    data = yaml.safe_load(dvc_file.read_text()) or {}
    out = {}
    for name, stage in (data.get("stages") or {}).items():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        wdir = (dvc_file.parent / body.get("wdir", ".")).resolve()
        out[name] = {"cmd": str(body.get("cmd", "")), "wdir": wdir, "deps": [str(d) for d in body.get("deps") or []]}
    return out


def is_code(dep: str, wdir: Path) -> bool:
    """A dep inside the package folder (``eavatar/...``, as written relative to the stage's wdir)."""
    path = (wdir / dep.split("#")[0].strip()).resolve()
    return path == PACKAGE_ROOT or PACKAGE_ROOT in path.parents


def code_deps(spec: dict) -> tuple[str, list[str]] | None:
    """(command module, the code deps it needs as written in dvc.yaml), or None for a stage that runs no eavatar command."""
    words = command_words(spec["cmd"])
    if words is None:
        return None
    module = command_module(words)
    return module, [Path(os.path.relpath(p, spec["wdir"])).as_posix() for p in compact(set(module_closure(module)))]


def declared_code(spec: dict) -> set[Path]:
    """The package files a stage's deps name (folders expanded as DVC hashes them)."""
    return expand([(spec["wdir"] / d).resolve() for d in spec["deps"] if is_code(d, spec["wdir"])])


ITEM = re.compile(r"^(?P<indent>\s*)-\s+(?P<value>[^#\s][^#]*?)\s*(?P<comment>#.*)?$")


def rewrite(text: str, specs: dict[str, dict]) -> str:
    """``text`` (a dvc.yaml) with the code deps of each eavatar stage replaced by its closure.

    Only the ``- eavatar/...`` items of each stage's ``deps:`` list change: other deps, comments
    and everything else stay as written. The new items go where the first old one was (after the
    last other dep when there was none)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage, i = None, 0
    while i < len(lines):
        line = lines[i]
        header = re.match(r"^  (?P<name>[A-Za-z0-9_@.-]+):\s*(#.*)?$", line)
        if header:
            stage = header["name"]
        deps = re.match(r"^(?P<indent>\s+)deps:\s*(#.*)?$", line)
        spec = specs.get(stage) if deps else None
        wanted = code_deps(spec) if spec else None
        if not wanted:
            out.append(line)
            i += 1
            continue
        module, paths = wanted
        out.append(line)
        i += 1
        block: list[tuple[str, bool]] = []  # (line, is code item)
        item_indent = None
        while i < len(lines):
            m = ITEM.match(lines[i])
            stripped = lines[i].strip()
            if m and len(m["indent"]) > len(deps["indent"]):
                item_indent = item_indent or m["indent"]
                block.append((lines[i], is_code(m["value"], spec["wdir"])))
            elif stripped == "" or (stripped.startswith("#") and len(lines[i]) - len(lines[i].lstrip()) > len(deps["indent"])):
                block.append((lines[i], False))
            else:
                break
            i += 1
        while block and not block[-1][0].strip():  # blank lines after the list stay after it
            i -= 1
            block.pop()
        item_indent = item_indent or deps["indent"] + "  "
        new = [f"{item_indent}- {p}" + (f"   {MARK.format(module=module)}" if k == 0 else "") + "\n" for k, p in enumerate(paths)]
        first_code = next((k for k, (_, code) in enumerate(block) if code), None)
        kept = [ln for ln, code in block if not code]
        if first_code is None:
            last_item = max((k for k, ln in enumerate(kept) if ITEM.match(ln)), default=-1)
            kept[last_item + 1 : last_item + 1] = new
        else:
            position = sum(1 for ln, code in block[:first_code] if not code)
            kept[position:position] = new
        out.extend(kept)
    return "".join(out)


def mismatches(dvc_file: Path) -> list[str]:
    """One line per eavatar stage whose code deps are not exactly its command's import closure."""
    problems = []
    for name, spec in stage_specs(dvc_file).items():
        wanted = code_deps(spec)
        if wanted is None:
            continue
        module = wanted[0]
        closure, declared = set(module_closure(module)), declared_code(spec)
        where = f"{_rel(dvc_file)}:{name}"
        if closure - declared:
            problems.append(f"{where}: {module} imports {_names(closure - declared)}, not in its deps")
        if declared - closure:
            problems.append(f"{where}: deps name {_names(declared - closure)}, which {module} does not import")
    return problems



def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if ROOT in path.parents else str(path)


def _names(paths: set[Path]) -> str:
    return ", ".join(sorted(_rel(p) for p in paths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="dvc.yaml files (default: the project's)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file's code deps are not its closure")
    args = ap.parse_args(argv)
    changed = []
    for f in [p.resolve() for p in args.files] or dvc_files():
        text = f.read_text()
        new = rewrite(text, stage_specs(f))
        if new != text:
            changed.append(f)
            if not args.check:
                f.write_text(new)
    verb = "out of date" if args.check else "rewritten"
    for f in changed:
        print(f"{_rel(f)}: code deps {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
