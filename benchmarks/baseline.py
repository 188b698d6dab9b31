"""Run a benchmark against an earlier revision of the package, in the same run as the current code.

A speed claim is a ratio measured on one machine in one sitting. The revision's ``eavatar``
package is checked out into a temporary git worktree and the *current* benchmark script runs
on it in a child process (PYTHONPATH first, so ``import eavatar`` is the old package).

- :func:`at_revision`: the script runs once with the same arguments and prints its result as
  the last line of JSON (enough when the gain is far above the run-to-run spread).
- :func:`interleaved`: two servers, the current package and the revision's, each set up once,
  then asked in turn for a block of timings, so both see the same machine state (a 2-core VM
  drifts by 10-20% between runs a minute apart, more than a small gain).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
REPLY = "eavatar-benchmark-reply: "  # marks a server's replies among what libraries print


def reply(obj: dict) -> None:
    """A server's answer (one line on stdout)."""
    print(REPLY + json.dumps(obj), flush=True)


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A temporary checkout of ``rev`` (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="eavatar-baseline-") as tmp:
        tree = Path(tmp).resolve() / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def _env(tree: Path | None) -> dict:
    if tree is None:
        return dict(os.environ)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def _check_package(result: dict, tree: Path, rev: str, script: str) -> None:
    if not result.get("package", "").startswith(str(tree)):
        raise RuntimeError(f"{script} on {rev} imported eavatar from {result.get('package')}, not the worktree {tree}")


def at_revision(rev: str, script: str, args: list[str]) -> dict:
    """The last JSON line ``script`` prints when run with ``args --as-baseline`` on revision ``rev``'s eavatar."""
    with worktree(rev) as tree:
        out = subprocess.run([sys.executable, script, *args, "--as-baseline"], cwd=ROOT, env=_env(tree), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{script} on {rev} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        _check_package(result, tree, rev, script)
    return {**result, "revision": rev}


class _Server:
    """``script --serve``: :func:`reply` once set up, then once per request line on stdin."""

    def __init__(self, script: str, args: list[str], tree: Path | None):
        self.proc = subprocess.Popen([sys.executable, script, *args, "--serve"], cwd=ROOT, env=_env(tree), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._reply()

    def _reply(self) -> dict:
        for line in self.proc.stdout:  # libraries print too: the reply is the next marked line
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY) :])
        raise RuntimeError(f"benchmark server exited with status {self.proc.wait()}")

    def ask(self, request: str) -> dict:
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def interleaved(rev: str, script: str, args: list[str], rounds: int, request: str, baseline_args: list[str] | None = None) -> tuple[dict, dict]:
    """Serve ``script`` on the current package and on ``rev``'s (with ``baseline_args`` instead of
    ``args`` when given), then send ``request`` to each in turn ``rounds`` times (the order
    alternating). Returns (current, baseline): the setup reply under "info" and the replies'
    "times" concatenated under "times"."""
    with worktree(rev) as tree:
        servers = {"current": _Server(script, args, None), "baseline": _Server(script, args if baseline_args is None else baseline_args, tree)}
        try:
            _check_package(servers["baseline"].info, tree, rev, script)
            times: dict[str, list[float]] = {name: [] for name in servers}
            for r in range(rounds):
                for name in (("current", "baseline") if r % 2 == 0 else ("baseline", "current")):
                    times[name] += servers[name].ask(request)["times"]
        finally:
            for server in servers.values():
                server.close()
    return tuple({"info": servers[name].info, "times": times[name]} for name in ("current", "baseline"))


def timed_step(trainer, step: int) -> float:
    """Milliseconds of one real training step of a set-up nerfstudio trainer: the callbacks before,
    ``train_iteration`` (data, render, loss, backward, optimiser steps) and the callbacks after."""
    import time

    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    t = time.perf_counter()
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    trainer.train_iteration(step)
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    return 1000 * (time.perf_counter() - t)


def package_path() -> str:
    """Where ``eavatar`` was imported from (a baseline run must name its worktree)."""
    import eavatar

    return str(Path(eavatar.__file__).resolve().parent)


def report(result: dict, out: Path, load_before: float) -> None:
    """Print ``result`` and write it to ``out`` with the machine state it was measured in."""
    import platform
    import time

    result.setdefault("meta", {}).update(
        load_average_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after: other processes on the cores
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    print(json.dumps(result, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def summary(times: list[float]) -> dict:
    """Median, 90th percentile and count of step times (ms)."""
    import statistics

    return {"median": round(statistics.median(times), 1), "p90": round(sorted(times)[int(0.9 * (len(times) - 1))], 1), "n": len(times)}


def ratio(old: float, new: float) -> float:
    """How many times faster ``new`` is than ``old`` (times in any unit)."""
    return round(old / new, 2)
