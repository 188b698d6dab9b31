"""DVC experiments read back through git, and whether a finished one still stands for the workspace."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import eavatar.tracking.experiments as exps
from eavatar.tracking.experiments import _lookup, experiment_commits, read_files, stage_lock, stale_reasons, untracked, worker_env

LOCK = {
    "cmd": "python run.py --data data/x",
    "deps": [{"path": "data/x", "hash": "md5", "md5": "aaa.dir"}, {"path": "run.py", "hash": "md5", "md5": "bbb"}],
    "params": {"params.yaml": {"train": {"lr": 1}, "sweep.variants.a": {"k": 2}, "sweep.variant": "a", "sweep.seed": 0}},
}


def current(tmp_path: Path, **changes) -> dict:
    params = {"train": {"lr": 1}, "sweep": {"variant": "b", "seed": 3, "variants": {"a": {"k": 2}, "b": {"k": 5}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(changes.pop("params", params)))
    return {"cmd": "python run.py --data data/x", "deps": {"data/x": "aaa.dir", "run.py": "bbb"}, "wdir": tmp_path} | changes


def test_an_unchanged_stage_is_fresh_whatever_the_workspace_variant(tmp_path):
    assert stale_reasons(LOCK, current(tmp_path), ignore_params=("sweep.variant", "sweep.seed")) == []
    # without ignoring them, the workspace's own variant and seed differ
    assert stale_reasons(LOCK, current(tmp_path)) == ["params.yaml: sweep.variant changed", "params.yaml: sweep.seed changed"]


def test_command_deps_and_params_changes_are_named(tmp_path):
    keys = ("sweep.variant", "sweep.seed")
    assert stale_reasons(LOCK, current(tmp_path, cmd="python run.py --data data/y"), keys) == ["command changed"]
    now = current(tmp_path, deps={"data/x": "aaa.dir", "run.py": "ccc", "lib.py": "ddd"})
    assert stale_reasons(LOCK, now, keys) == ["run.py changed", "lib.py: not a dep then"]
    assert stale_reasons(LOCK, current(tmp_path, deps={"data/x": None, "run.py": "bbb"}), keys) == ["data/x: missing in the workspace"]
    assert stale_reasons(LOCK, current(tmp_path, deps={"data/x": "aaa.dir"}), keys) == ["run.py: no longer a dep"]
    params = {"train": {"lr": 2}, "sweep": {"variants": {"b": {}}}}
    assert stale_reasons(LOCK, current(tmp_path, params=params), keys) == ["params.yaml: train changed", "params.yaml: sweep.variants.a removed"]


def test_lookup_follows_dotted_keys_as_dvc_does():
    assert _lookup({"a": {"b": {"c": 1}}}, "a.b.c") == (True, 1)
    assert _lookup({"a.b": 2}, "a.b") == (True, 2)
    assert _lookup({"a": {"b": 1}}, "a.x") == (False, None)


def git(repo: Path, *args: str, **kw) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, **kw).stdout


def test_experiment_refs_and_files_are_read_from_git(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"run": LOCK}}))
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\n\xff")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    base = git(tmp_path, "rev-parse", "HEAD").strip()
    ref = f"refs/exps/{base[:2]}/{base[2:]}/full-s1-x"
    git(tmp_path, "update-ref", ref, base)
    git(tmp_path, "update-ref", "refs/exps/stash", base)  # not an experiment
    (found,) = experiment_commits(tmp_path)
    assert (found.rev, found.name, found.baseline) == (base, "full-s1-x", base)
    lock, blob, absent = read_files(tmp_path, [(base, "dvc.lock"), (base, "blob.bin"), (base, "nope.txt")])
    assert stage_lock(lock, "run") == LOCK and stage_lock(lock, "other") is None and stage_lock(None, "run") is None
    assert blob == b"\x00\x01\n\xff" and absent is None
    (tmp_path / "new.py").write_text("")
    assert untracked(tmp_path, ["new.py", "dvc.lock"]) == ["new.py"]


def test_workers_get_this_python_first_and_the_project_mlflow_store(tmp_path, monkeypatch):
    import sys

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = worker_env(tmp_path)
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def _queue_replay(monkeypatch, polls: list[dict[str, str]]) -> None:
    """task_states answers the next of ``polls`` (the last one forever); no sleeping."""
    import eavatar.tracking.experiments as exps

    answers = iter(polls)
    last = {}

    def states(root):
        nonlocal last
        last = next(answers, last)
        return dict(last)

    monkeypatch.setattr(exps, "task_states", states)
    monkeypatch.setattr(exps.time, "sleep", lambda s: None)


def test_a_queue_whose_worker_stopped_is_restarted_and_finishes(monkeypatch, tmp_path):
    from eavatar.tracking.experiments import wait

    stalled = {"a": "Success", "b": "Queued"}
    _queue_replay(monkeypatch, [{"a": "Running", "b": "Queued"}, *[stalled] * 3, {"a": "Success", "b": "Running"}, {"a": "Success", "b": "Success"}])
    restarts, lines = [], []
    # the worker of "a" stops after it; "b" waits queued until the queue is started again
    states = wait(tmp_path, ["a", "b"], echo=lines.append, restart=lambda: restarts.append(1), stall_polls=3)
    assert states == {"a": "Success", "b": "Success"} and restarts == [1]
    assert any("starting the queue workers again" in line for line in lines)


def test_a_stalled_queue_without_restart_is_an_error_not_a_hang(monkeypatch, tmp_path):
    import pytest

    from eavatar.tracking.experiments import ExperimentError, wait

    _queue_replay(monkeypatch, [{"a": "Queued"}])
    with pytest.raises(ExperimentError, match="no queue worker runs them"):
        wait(tmp_path, ["a"], echo=lambda line: None, stall_polls=3)


def test_a_task_left_running_by_a_worker_that_exited_is_queued_again(monkeypatch, tmp_path):
    import eavatar.tracking.experiments as exps

    lost = {"a": "Success", "b": "Running"}  # "b" was taken by a worker that then exited
    _queue_replay(monkeypatch, [*[lost] * 4, {"a": "Success", "b": "Running", "b2": "Queued"}, {"a": "Success", "b": "Running", "b2": "Success"}])
    alive = iter([False] * 3 + [True] * 10)
    monkeypatch.setattr(exps, "workers_alive", lambda root: next(alive))
    requeued, restarts, lines = [], [], []

    def requeue(names):
        requeued.append(names)
        return {"b": "b2"}

    states = exps.wait(tmp_path, ["a", "b"], echo=lines.append, stall_polls=3, restart=lambda: restarts.append(1), requeue=requeue)
    assert requeued == [["b"]] and restarts == [1] and states == {"a": "Success", "b2": "Success"}
    assert any("no queue worker is alive; queueing them again" in line for line in lines)


def test_a_running_task_without_a_worker_and_without_requeue_is_an_error_not_a_hang(monkeypatch, tmp_path):
    import pytest

    import eavatar.tracking.experiments as exps

    _queue_replay(monkeypatch, [{"a": "Running"}])
    monkeypatch.setattr(exps, "workers_alive", lambda root: False)
    with pytest.raises(exps.ExperimentError, match="a: listed as running but no queue worker is alive"):
        exps.wait(tmp_path, ["a"], echo=lambda line: None, stall_polls=3)


def test_workers_alive_reads_the_worker_pid_files(tmp_path):
    import os
    import subprocess

    from eavatar.tracking.experiments import workers_alive

    assert workers_alive(tmp_path)  # no queue folder: nothing can be told
    folder = tmp_path / ".dvc" / "tmp" / "exps" / "celery"
    folder.mkdir(parents=True)
    exited = subprocess.Popen(["true"])
    exited.wait()
    (folder / "dvc-exp-worker-1.pid").write_text(str(exited.pid))
    assert not workers_alive(tmp_path)
    (folder / "dvc-exp-worker-2.pid").write_text(str(os.getpid()))
    assert workers_alive(tmp_path)


def _fake_dvc(tmp_path, body: str) -> str:
    script = tmp_path / "dvc"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_a_dvc_command_that_leaves_a_daemon_behind_returns_when_it_exits(monkeypatch, tmp_path):
    """`dvc queue start` exits at once and leaves its worker running with the command's stdout and
    stderr: reading them as pipes would block until the worker finished the whole queue."""
    daemon = "sleep 30 &\necho $! > daemon.pid\n"  # a background child that keeps stdout and stderr open
    monkeypatch.setattr(exps, "dvc_executable", lambda: _fake_dvc(tmp_path, daemon + 'echo "started $DVC_NO_ANALYTICS"\n'))
    start = time.monotonic()
    try:
        assert exps.run_dvc(tmp_path, ["queue", "start"]).strip() == "started 1"  # and analytics off
        assert time.monotonic() - start < 10
    finally:
        os.kill(int((tmp_path / "daemon.pid").read_text()), signal.SIGTERM)


def test_a_failing_dvc_command_names_its_last_line(monkeypatch, tmp_path):
    monkeypatch.setattr(exps, "dvc_executable", lambda: _fake_dvc(tmp_path, 'echo "ERROR: no such stage: nope" >&2\nexit 255\n'))
    with pytest.raises(exps.ExperimentError, match="`dvc repro nope ...` failed: ERROR: no such stage: nope"):
        exps.run_dvc(tmp_path, ["repro", "nope"])


def test_a_dvc_command_waits_for_a_worker_that_still_holds_the_experiments_lock(monkeypatch, tmp_path):
    """A worker shutting down after the previous queue holds .dvc/tmp/exps/rwlock: the first
    tries fail with DVC's lock message, a later one queues."""
    tries = tmp_path / "tries"
    busy = f"If there are no processes with such PIDs, you can manually remove '{tmp_path}/.dvc/tmp/exps/rwlock' and try again."
    body = f'echo x >> {tries}\nif [ $(wc -l < {tries}) -lt 3 ]; then echo "{busy}" >&2; exit 1; fi\necho "queued $*"\n'
    monkeypatch.setattr(exps, "dvc_executable", lambda: _fake_dvc(tmp_path, body))
    exps.run_dvc(tmp_path, ["exp", "run", "--queue", "--name", "run-s1", "-S", "ablation.seed=1", "dvc.yaml"], lock_wait=30, poll=0.01)
    assert len(tries.read_text().split()) == 3


def test_a_dvc_command_gives_up_on_a_lock_that_stays_taken_and_raises_other_errors_at_once(monkeypatch, tmp_path):
    tries = tmp_path / "tries"
    busy = f"you can manually remove '{tmp_path}/.dvc/tmp/exps/rwlock' and try again."
    monkeypatch.setattr(exps, "dvc_executable", lambda: _fake_dvc(tmp_path, f'echo x >> {tries}\necho "{busy}" >&2\nexit 1\n'))
    with pytest.raises(exps.ExperimentError, match="rwlock"):
        exps.run_dvc(tmp_path, ["queue", "start"], lock_wait=0.2, poll=0.05)
    assert len(tries.read_text().split()) >= 2
    tries.unlink()
    monkeypatch.setattr(exps, "dvc_executable", lambda: _fake_dvc(tmp_path, f'echo x >> {tries}\necho "ERROR: bad params" >&2\nexit 1\n'))
    with pytest.raises(exps.ExperimentError, match="bad params"):
        exps.run_dvc(tmp_path, ["exp", "run", "--queue"], lock_wait=30, poll=0.01)
    assert len(tries.read_text().split()) == 1
