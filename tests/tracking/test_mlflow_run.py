import warnings

import mlflow
import pytest

from eavatar.tracking.mlflow_run import TrackedRun, flatten, provenance_tags, tracking_uri


def test_flatten_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_default_store_is_local_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_run_is_recorded_and_searchable(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    art = tmp_path / "render.png"
    art.write_bytes(b"png")
    with TrackedRun("unit", experiment="eavatar-test", tags={"stage": "test"}) as run:
        run.log_params({"model": {"hidden_dim": 64}})
        for step in range(3):
            run.log_metrics({"loss/rgb": 1.0 / (step + 1)}, step=step)
        run.log_artifacts([art], artifact_path="renders")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["eavatar-test"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["params.model.hidden_dim"] == "64"
    assert row["metrics.loss_rgb"] == pytest.approx(1 / 3)
    assert row["tags.stage"] == "test" and row["tags.git_commit"]
    history = mlflow.tracking.MlflowClient().get_metric_history(run.run_id, "loss_rgb")
    assert [m.step for m in history] == [0, 1, 2]


def test_tracking_failure_warns_and_does_not_raise(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TrackedRun("broken", experiment="eavatar-test") as run:
            run.log_metrics({"loss": 1.0}, step=0)
            run.log_params({"a": 1})
    assert not run.enabled
    assert any("training continues without tracking" in str(w.message) for w in caught)


def test_provenance_tags_without_git(tmp_path):
    tags = provenance_tags(tmp_path)
    assert tags["dvc_lock_sha256"] == "absent"
    assert "git_commit" in tags


# -- the suite's own store (tests/conftest.py) -----------------------------------------------------
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import eavatar.tracking.mlflow_run as mr

REPO = Path(__file__).resolve().parents[2]


def _snapshot(path: Path):
    """What a write would change: absent, or size and mtime of a file / of every file under a folder."""
    if not path.exists():
        return None
    if path.is_file():
        return (path.stat().st_size, path.stat().st_mtime_ns)
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_suite_logs_to_its_own_store_never_the_projects(mlflow_store, monkeypatch, tmp_path):
    """From the project folder, with no MLFLOW_TRACKING_URI of its own, a test's run (and its
    artifacts) lands in the suite's temporary store; ./mlflow.db and ./mlruns are untouched."""
    uri = f"sqlite:///{mlflow_store}"
    assert os.environ["MLFLOW_TRACKING_URI"] == uri == tracking_uri()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MLFLOW_TRACKING_URI'])"], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == uri  # processes a test starts (training, ablation) inherit it
    monkeypatch.chdir(REPO)
    before = {name: _snapshot(REPO / name) for name in ("mlflow.db", "mlruns")}
    art = tmp_path / "sample.png"
    art.write_bytes(b"png")
    with TrackedRun("suite-store", experiment="eavatar-suite-store") as run:
        run.log_params({"a": 1})
        run.log_metrics({"loss/total": 0.5}, step=1)
        run.log_artifacts([art], artifact_path="samples")
    assert run.enabled and run.status == "FINISHED"
    assert {name: _snapshot(REPO / name) for name in before} == before
    assert [r.info.run_id for r in _runs(uri, "eavatar-suite-store")] == [run.run_id]
    assert list((mlflow_store.parent / "mlruns").rglob("sample.png"))  # artifacts beside the store


# -- a run that does not finish ends FAILED ------------------------------------------------------------


def _status(run: TrackedRun) -> tuple[str, dict]:
    from mlflow.tracking import MlflowClient

    got = MlflowClient(tracking_uri=run.uri).get_run(run.run_id)
    return got.info.status, got.data.tags


def test_exception_through_the_block_ends_the_run_failed():
    with pytest.raises(ZeroDivisionError):
        with TrackedRun("crash", experiment="eavatar-test") as run:
            run.log_metrics({"loss": 1.0}, step=0)
            1 / 0
    status, tags = _status(run)
    assert status == "FAILED" and run.status == "FAILED"
    assert tags["failure"].startswith("ZeroDivisionError: division by zero")


def test_ctrl_c_ends_the_run_killed():
    with pytest.raises(KeyboardInterrupt):
        with TrackedRun("ctrl-c", experiment="eavatar-test") as run:
            raise KeyboardInterrupt
    assert _status(run)[0] == "KILLED"


def test_run_opened_by_hand_fails_once_and_stays_closed():
    """The trainer's pattern: __enter__ in setup, fail() on the error path, a later close is a no-op."""
    run = TrackedRun("by-hand", experiment="eavatar-test").__enter__()
    assert run in mr._open_runs
    run.fail(RuntimeError("CUDA out of memory"))
    run.__exit__(None, None, None)  # finish() after a failure must not turn it FINISHED
    run.log_metrics({"loss": 1.0}, step=3)  # nor log into a closed run
    status, tags = _status(run)
    assert status == "FAILED" and tags["failure"] == "RuntimeError: CUDA out of memory"
    assert run not in mr._open_runs
    done = TrackedRun("done", experiment="eavatar-test").__enter__()
    done.__exit__(None, None, None)
    done.fail(RuntimeError("late"))
    assert _status(done)[0] == "FINISHED"


def test_run_left_open_by_a_crashed_process_ends_failed(tmp_path):
    """A process that dies past whoever opened the run (the run is closed only in finish()) ends it FAILED at exit."""
    code = (
        "from eavatar.tracking.mlflow_run import TrackedRun\n"
        "run = TrackedRun('crashed-process', experiment='eavatar-test').__enter__()\n"
        "print(run.run_id, flush=True)\n"
        "raise RuntimeError('boom in training')\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert out.returncode == 1 and "boom in training" in out.stderr
    (run,) = _runs(uri, "eavatar-test")
    assert run.info.run_id == out.stdout.strip()
    assert run.info.status == "FAILED" and "boom in training" in run.data.tags["failure"]


# -- a tracking server that is down costs seconds ------------------------------------------------------


@pytest.fixture
def fresh_http_settings(monkeypatch):
    """No process-wide memory of unreachable servers, and MLflow's HTTP settings unset (restored after)."""
    monkeypatch.setattr(mr, "_unreachable", {})
    for key in mr.HTTP_DEFAULTS:
        monkeypatch.setenv(key, "placeholder")  # recorded, so the value our code sets is undone
        monkeypatch.delenv(key)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _track_everything(tmp_path: Path, name: str) -> TrackedRun:
    art = tmp_path / "avatar.pt"
    art.write_bytes(b"x")
    run = TrackedRun(name, experiment="eavatar-test").__enter__()
    run.log_params({"model": {"hidden_dim": 64}})
    for step in range(3):
        run.log_metrics({"loss/total": 1.0}, step=step)
    run.log_artifacts([art], artifact_path="checkpoint")
    run.__exit__(None, None, None)
    return run


def test_server_down_costs_seconds_and_warns_once(monkeypatch, tmp_path, fresh_http_settings):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting wins
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _track_everything(tmp_path, "train")
        second = _track_everything(tmp_path, "evaluate")  # e.g. evaluate after train, same process
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"{elapsed:.1f} s with the tracking server down"
    assert not first.enabled and not second.enabled and first.run_id is None
    messages = [str(w.message) for w in caught if "MLflow" in str(w.message)]
    assert len(messages) == 1 and uri in messages[0] and "not reachable" in messages[0]
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == mr.HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_server_that_dies_mid_run_costs_seconds(monkeypatch, tmp_path, fresh_http_settings):
    """A server that accepts connections (the probe passes) but drops every request: MLflow's own
    retries (7, exponential backoff, minutes) are cut to seconds, and tracking turns off once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def drop_everything():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=drop_everything, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = _track_everything(tmp_path, "train")
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert elapsed < 20, f"{elapsed:.1f} s with a tracking server that drops requests"
    assert not run.enabled
    messages = [str(w.message) for w in caught if "MLflow" in str(w.message)]
    assert len(messages) == 1 and "training continues without tracking" in messages[0]


def test_a_logging_failure_mid_run_still_closes_the_run(monkeypatch):
    """Logging turns off after one failure, but the run is still ended, not left RUNNING."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TrackedRun("flaky", experiment="eavatar-test") as run:
            monkeypatch.setattr(run._client, "log_batch", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("store hiccup")))
            run.log_metrics({"loss": 1.0}, step=0)
            run.log_metrics({"loss": 0.5}, step=1)
    assert not run.enabled
    assert len([w for w in caught if "training continues without tracking" in str(w.message)]) == 1
    assert _status(run)[0] == "FINISHED"
