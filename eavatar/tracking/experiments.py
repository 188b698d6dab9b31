"""DVC experiments as a job queue: queue them, start workers, wait, and read the finished ones back.

``dvc exp run --queue -S key=value`` stashes the workspace with the overrides applied and
``dvc queue start -j N`` runs the queue on N workers, each experiment in a temporary copy of the
repository (tracked and modified files; untracked files stay behind) with the shared DVC cache.
A finished experiment is a git commit under ``refs/exps/`` holding its params, its ``dvc.lock``
and its uncached outputs; cached outputs sit in the DVC cache. DVC's run cache replays a stage
whose command, deps and params it has run before, so re-queueing an unchanged experiment costs
seconds and a changed dep (code included) trains again.

Reading back goes through git (``git for-each-ref refs/exps``, ``git cat-file``): fast for any
number of baselines. Whether a finished experiment still stands for the workspace is DVC's own
criterion: :func:`stale_reasons` compares its stage lock (command, dep hashes, params) with the
workspace's, as ``dvc status`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from eavatar.errors import EAvatarError
from eavatar.tracking.runs import dvc_executable

#: Queue task states that are final (``dvc queue status``).
DONE = ("Success", "Failed")


class ExperimentError(EAvatarError):
    """A dvc command of the queue failed; the message has its last line."""


#: The last line of a dvc command that found the experiments' lock taken by another dvc process.
LOCK_BUSY = "exps/rwlock"


def run_dvc(root: Path, args: list[str], env: dict[str, str] | None = None, timeout: float | None = None, lock_wait: float = 120.0, poll: float = 1.0) -> str:
    """``dvc <args>`` in ``root``; its stdout, or :class:`ExperimentError` with dvc's last line.

    Output goes through temporary files, not pipes: ``dvc queue start`` leaves a worker manager
    running in the background that inherits the command's stdout and stderr, and reading pipes
    to their end would wait for that worker to finish the whole queue (or for any other daemon
    holding them), with nothing printed meanwhile. DVC's usage analytics are off in these
    subprocesses (no network is expected here).

    A queue worker that has just finished a queue still holds the experiments' lock while it
    shuts down (seen when a second ablation was queued seconds after the first ended), and a
    dvc command then fails at once: it is tried again every ``poll`` seconds for up to
    ``lock_wait`` seconds; any other failure is raised at once."""
    env = dict(os.environ if env is None else env)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    deadline = time.monotonic() + lock_wait
    while True:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run([dvc_executable(), *args], cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, env=env, timeout=timeout)
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        if proc.returncode == 0:
            return stdout
        last = (stderr or stdout).strip().splitlines()
        if not (last and LOCK_BUSY in last[-1]) or time.monotonic() >= deadline:
            raise ExperimentError(f"{root}: `dvc {' '.join(args[:3])} ...` failed: {last[-1] if last else f'exit status {proc.returncode}'}")
        time.sleep(poll)


def untracked(root: Path, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` (files or folders, relative to ``root``) with files git does not track and
    does not ignore: a queued experiment would not have them."""
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", *paths], cwd=root, capture_output=True, text=True)
    return out.stdout.split()


def queue(root: Path, target: str, overrides: dict[str, Any], name: str) -> None:
    """``dvc exp run --queue --name <name> -S key=value ... <target>``."""
    sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
    run_dvc(root, ["exp", "run", "--queue", "--name", name, *sets, target])


def worker_env(root: Path) -> dict[str, str]:
    """The environment for queue workers: this Python's folder first on PATH (a stage's ``python``
    is this one, the venv's), and MLflow runs into the project's store, not the temporary copy's."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path(root).resolve() / 'mlflow.db'}")
    return env


def start_workers(root: Path, jobs: int, env: dict[str, str] | None = None) -> None:
    """``dvc queue start -j <jobs>``: workers run the queue in the background and stop once it is empty."""
    run_dvc(root, ["queue", "start", "-j", str(int(jobs))], env=env if env is not None else worker_env(root))


def task_states(root: Path) -> dict[str, str]:
    """Name -> state (Queued, Running, Success, Failed) of every task ``dvc queue status`` knows."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {str(t.get("name") or t["rev"]): str(t["status"]) for t in repo.experiments.celery_queue.status()}


def workers_alive(root: Path) -> bool:
    """Whether a queue worker of ``root`` is running: DVC writes each worker's pid to
    ``.dvc/tmp/exps/celery/dvc-exp-worker-<n>.pid`` and leaves the file when the worker exits.
    (Without that folder nothing can be told, and the answer is True.)"""
    folder = Path(root) / ".dvc" / "tmp" / "exps" / "celery"
    if not folder.is_dir():
        return True
    for pid_file in folder.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
            return True
        except (ValueError, ProcessLookupError):
            continue
        except PermissionError:  # alive, another user's
            return True
    return False


def wait(
    root: Path,
    names: list[str],
    poll: float = 5.0,
    echo: Callable[[str], None] = print,
    timeout: float | None = None,
    restart: Callable[[], None] | None = None,
    stall_polls: int = 6,
    requeue: Callable[[list[str]], dict[str, str]] | None = None,
) -> dict[str, str]:
    """Poll the queue until every task of ``names`` is Success or Failed; returns their states
    (by the names finally waited for, see ``requeue``). Prints a line whenever the counts change.

    A queue worker can stop with tasks still queued (celery's "Got shutdown from remote" was
    seen once, after one of twelve runs): when tasks of ``names`` stay queued with none running
    for ``stall_polls`` polls, ``restart`` (e.g. :func:`start_workers`) is called, else it is an error.
    A worker that is shutting down because the queue was empty can also take a task queued at
    that moment and exit without running it (seen when a second queue followed the first within
    seconds): DVC then lists the task as Running forever. When tasks of ``names`` are Running
    and no worker is alive (:func:`workers_alive`) for ``stall_polls`` polls, ``requeue`` is
    called with their names and returns old name -> the name of the experiment queued in its
    place, which is waited for instead (then ``restart`` starts workers for it); without
    ``requeue`` it is an error.
    """
    names = list(names)
    start, last, idle, orphaned = time.monotonic(), None, 0, 0
    while True:
        states = task_states(root)
        mine = {n: states.get(n, "Unknown") for n in names}
        counts = {s: sum(v == s for v in mine.values()) for s in sorted(set(mine.values()))}
        line = ", ".join(f"{c} {s.lower()}" for s, c in counts.items())
        if line != last:
            echo(f"experiments: {line}")
            last = line
        if all(s in DONE for s in mine.values()):
            return mine
        idle = idle + 1 if "Queued" in counts and "Running" not in states.values() else 0
        if idle >= stall_polls:
            if restart is None:
                raise ExperimentError(f"{root}: experiments queued but no queue worker runs them ({line}); `dvc queue start`")
            echo("experiments queued but none running: starting the queue workers again")
            restart()
            idle = 0
        running = [n for n, s in mine.items() if s == "Running"]
        orphaned = orphaned + 1 if running and not workers_alive(root) else 0
        if orphaned >= stall_polls:
            if requeue is None:
                raise ExperimentError(f"{root}: {', '.join(running)}: listed as running but no queue worker is alive (DVC lost them); queue them again")
            echo(f"{', '.join(running)}: listed as running but no queue worker is alive; queueing them again")
            replaced = requeue(running)
            names = [replaced.get(n, n) for n in names]
            if restart is not None:
                restart()
            orphaned = 0
        if timeout is not None and time.monotonic() - start > timeout:
            raise ExperimentError(f"{root}: experiments not finished after {timeout:.0f} s ({line}); `dvc queue status`")
        time.sleep(poll)


@dataclass(frozen=True)
class ExperimentCommit:
    """A finished DVC experiment: its commit, name, baseline commit and commit time (epoch seconds)."""

    rev: str
    name: str
    baseline: str
    time: int


def experiment_commits(root: Path) -> list[ExperimentCommit]:
    """Every finished experiment of the repository, newest first (all baselines)."""
    fmt = "%(objectname) %(committerdate:unix) %(refname)"
    out = subprocess.run(["git", "for-each-ref", f"--format={fmt}", "refs/exps/"], cwd=root, capture_output=True, text=True)
    found = []
    for line in out.stdout.splitlines():
        rev, stamp, ref = line.split(" ", 2)
        parts = ref.split("/")  # refs/exps/<baseline[:2]>/<baseline[2:]>/<name>
        if len(parts) == 5 and len(parts[2]) == 2:
            found.append(ExperimentCommit(rev=rev, name=parts[4], baseline=parts[2] + parts[3], time=int(stamp)))
    return sorted(found, key=lambda e: e.time, reverse=True)


def read_files(root: Path, wanted: list[tuple[str, str]]) -> list[bytes | None]:
    """The contents of (commit, path) pairs from git, in one ``git cat-file --batch``; None where absent."""
    if not wanted:
        return []
    request = "".join(f"{rev}:{path}\n" for rev, path in wanted).encode()
    data = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input=request, capture_output=True).stdout
    out, pos = [], 0
    for _ in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[-1] == b"missing":
            out.append(None)
            continue
        size = int(header[2])
        out.append(data[pos : pos + size])
        pos += size + 1
    return out


def stage_lock(lock_text: bytes | str | None, stage: str) -> dict | None:
    """The entry of ``stage`` in a dvc.lock's text, or None."""
    if not lock_text:
        return None
    data = yaml.safe_load(lock_text) or {}
    entry = (data.get("stages") or {}).get(stage)
    return entry if isinstance(entry, dict) else None


def current_stage(root: Path, dvc_file: str, stage: str) -> dict:
    """The workspace's side of ``dvc status`` for one stage: {cmd, deps: {path: hash or None}} (DVC's own hashes)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        (found,) = repo.stage.collect(f"{Path(root).resolve() / dvc_file}:{stage}")
        deps: dict[str, str | None] = {}
        for dep in found.deps:
            if isinstance(dep, ParamsDependency):
                continue
            try:
                info = dep.get_hash()
            except Exception:  # noqa: BLE001 - a missing dep is a stale experiment, said as such
                info = None
            deps[str(dep.def_path)] = info.value if info else None
        return {"cmd": found.cmd, "deps": deps, "wdir": Path(found.wdir)}


def _lookup(data: Any, dotted: str) -> tuple[bool, Any]:
    """params.yaml value at a DVC params key (``a.b.c``): (found, value)."""
    if isinstance(data, dict) and dotted in data:
        return True, data[dotted]
    head, _, rest = dotted.partition(".")
    if rest and isinstance(data, dict) and head in data:
        return _lookup(data[head], rest)
    return False, None


def stale_reasons(lock: dict, current: dict, ignore_params: Iterable[str] = ()) -> list[str]:
    """Why an experiment's stage lock does not stand for the workspace (empty: it does): another
    command, a dep whose hash differs (or that is missing), a params value that differs. Params in
    ``ignore_params`` are what tells experiments apart (e.g. the variant and seed)."""
    reasons = []
    if str(lock.get("cmd", "")).strip() != str(current["cmd"]).strip():
        reasons.append("command changed")
    recorded = {d["path"]: d.get("md5") or d.get(d.get("hash", "md5")) for d in lock.get("deps") or []}
    for path, now in current["deps"].items():
        if now is None:
            reasons.append(f"{path}: missing in the workspace")
        elif recorded.get(path) != now:
            reasons.append(f"{path} changed" if path in recorded else f"{path}: not a dep then")
    reasons += [f"{path}: no longer a dep" for path in sorted(set(recorded) - set(current["deps"]))]
    ignore = set(ignore_params)
    for file, values in (lock.get("params") or {}).items():
        path = current["wdir"] / file
        now = yaml.safe_load(path.read_text()) if path.is_file() else {}
        for key, value in values.items():
            if key in ignore:
                continue
            found, value_now = _lookup(now, key)
            if not found:
                reasons.append(f"{file}: {key} removed")
            elif value_now != value:
                reasons.append(f"{file}: {key} changed")
    return reasons
