"""Run a benchmark against an earlier revision of the package, in the same run as the current code.

A speed claim is a ratio measured on one machine in one sitting. ``at_revision`` checks the
revision's ``eavatar`` package out into a temporary git worktree and runs the *current*
benchmark script on it in a child process (PYTHONPATH first, so ``import eavatar`` is the old
package), with the same arguments; the script prints its result as the last line of JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def at_revision(rev: str, script: str, args: list[str]) -> dict:
    """The last JSON line ``script`` prints when run with ``args`` on revision ``rev``'s eavatar."""
    with tempfile.TemporaryDirectory(prefix="eavatar-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
            out = subprocess.run([sys.executable, script, *args, "--as-baseline"], cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{script} on {rev} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    if not result.get("package", "").startswith(str(tree)):
        raise RuntimeError(f"{script} on {rev} imported eavatar from {result.get('package')}, not the worktree")
    return {**result, "revision": rev}


def package_path() -> str:
    """Where ``eavatar`` was imported from (a baseline run must name its worktree)."""
    import eavatar

    return str(Path(eavatar.__file__).resolve().parent)


def ratio(old: float, new: float) -> float:
    """How many times faster ``new`` is than ``old`` (times in any unit)."""
    return round(old / new, 2)
