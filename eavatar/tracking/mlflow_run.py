"""MLflow logging that can never kill a training run, nor stall one.

A local SQLite store in the working directory by default (no server to start);
``MLFLOW_TRACKING_URI`` selects another store or a server. Every call is guarded: the first
failure warns, names the tracking URI, and turns logging off for the rest of the run.

A tracking server that is down costs seconds, not minutes: before the first request an
``http(s)://`` URI is probed once per process (a TCP connect, ``PROBE_TIMEOUT_S``); when
nothing answers, one warning is printed and tracking is off for the whole process. MLflow's
own HTTP retries (7, with exponential backoff: about 4 minutes) and its 120 s request timeout
are lowered for this process (``HTTP_DEFAULTS``; a value already in the environment wins), so
a server that dies mid-run also costs seconds.

A run ends FINISHED only when it is closed normally; an exception through the ``with`` block
or :meth:`TrackedRun.fail` ends it FAILED (KILLED for Ctrl-C), and a run still open when the
process exits (a crash past whoever opened it) is ended FAILED then.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

DEFAULT_EXPERIMENT = "eavatar"
PROBE_TIMEOUT_S = 2.0
#: MLflow HTTP client settings for this process (unless already set): a dead server costs seconds.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}

_unreachable: dict[str, str] = {}  # tracking URI -> why; probed once per process, warned once
_open_runs: list["TrackedRun"] = []  # runs to end FAILED if the process exits with them open


def tracking_uri(root: str | Path | None = None) -> str:
    """MLFLOW_TRACKING_URI, else ``sqlite:///<root>/mlflow.db`` (root: the working directory, the project's for `dvc repro`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root or Path.cwd()).resolve() / 'mlflow.db'}"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys, the way params.yaml names them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def provenance_tags(root: Path | None = None) -> dict[str, str]:
    """Git commit and dvc.lock hash, set explicitly (MLflow's own git tags need a git-run entry point)."""
    root = root or Path.cwd()
    tags = {}
    try:
        tags["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        tags["git_commit"] = "unknown"
    lock = root / "dvc.lock"
    tags["dvc_lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "absent"
    return tags


class TrackedRun:
    """One MLflow run. Use it as a context manager::

        with TrackedRun("evaluate-test", tags={"stage": "evaluate"}) as run:
            run.log_metrics({...})

    Leaving the block normally ends the run FINISHED; an exception leaving it ends the run
    FAILED (KILLED for ``KeyboardInterrupt``) and propagates. Code that opens the run by hand
    (``__enter__``) and closes it elsewhere calls :meth:`fail` on its error path; a run left open
    at process exit is ended FAILED. Every method is a no-op once tracking is off (the store
    failed or the server is unreachable) or the run is closed; none of them ever raises.
    """

    def __init__(self, run_name: str, experiment: str = DEFAULT_EXPERIMENT, tags: Mapping[str, str] | None = None):
        self.run_name = run_name
        self.experiment = experiment
        self.tags = dict(tags or {})
        self.enabled = True
        self.run_id: str | None = None
        self.status: str | None = None  # FINISHED / FAILED / KILLED once closed
        self.uri = tracking_uri()
        self._client = None

    def _guard(self, what: str, fn, *args, **kwargs):
        if not self.enabled:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            self.enabled = False
            warnings.warn(f"MLflow {what} failed at {self.uri} ({err!r}); training continues without tracking", stacklevel=3)
            return None

    def __enter__(self) -> "TrackedRun":
        if self.run_id is not None or self.status is not None:
            return self
        if not server_reachable(self.uri):
            self.enabled = False
            return self

        def start():
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
            experiment_id = self._experiment_id()
            tags = {**provenance_tags(), **self.tags}
            try:  # the tags mlflow.start_run adds (user, source name/type, git)
                from mlflow.tracking.context.registry import resolve_tags

                tags = resolve_tags(tags)
            except Exception:  # noqa: BLE001 - optional metadata
                pass
            run = self._client.create_run(experiment_id, tags=tags, run_name=self.run_name)
            self.run_id = run.info.run_id
            _open_runs.append(self)

        self._guard("start", start)
        return self

    def _experiment_id(self) -> str:
        client = self._client
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                return client.create_experiment(self.experiment, artifact_location=artifact_location(self.uri, self.experiment))
            except Exception:  # noqa: BLE001 - another process created it first
                experiment = client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise RuntimeError(f"experiment {self.experiment!r} is deleted (restore it, or pick another name)")
        return experiment.experiment_id

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.fail(exc if exc is not None else exc_type())

    def fail(self, error: BaseException | None = None) -> None:
        """End the run FAILED (KILLED for ``KeyboardInterrupt``), noting the error in the run's
        ``failure`` tag. For code that opened the run by hand; call it, then re-raise."""
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        note = f"{type(error).__name__}: {error}" if error is not None else ""
        self.end(status, failure=note)

    def end(self, status: str = "FINISHED", failure: str = "") -> None:
        """Close the run with ``status`` (FINISHED, FAILED or KILLED); later calls do nothing."""
        if self.status is not None:
            return
        self.status = status
        if self in _open_runs:
            _open_runs.remove(self)
        if self.run_id is None:
            return
        if failure:
            self._guard("set_tag", self._client.set_tag, self.run_id, "failure", failure.strip()[:5000])
        if self.enabled:
            self._guard("end", self._client.set_terminated, self.run_id, status)
        else:  # logging failed mid-run: still try (once, quietly) not to leave the run RUNNING
            try:
                self._client.set_terminated(self.run_id, status)
            except Exception:  # noqa: BLE001
                pass

    @property
    def active(self) -> bool:
        return self.enabled and self.run_id is not None and self.status is None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        flat = [Param(k, str(v)[:500]) for k, v in flatten(params).items()]
        self._guard("log_params", self._client.log_batch, self.run_id, params=flat)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        clean = [Metric(k.replace("/", "_"), float(v), now, int(step or 0)) for k, v in metrics.items() if v is not None]
        self._guard("log_metrics", self._client.log_batch, self.run_id, metrics=clean)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        if not self.active:
            return
        for p in paths:
            p = Path(p)
            if p.is_dir():
                self._guard("log_artifacts", self._client.log_artifacts, self.run_id, str(p), artifact_path)
            elif p.is_file():
                self._guard("log_artifact", self._client.log_artifact, self.run_id, str(p), artifact_path)


def artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store: ``mlruns/<experiment>`` beside the database file (MLflow's default is
    ``./mlruns`` of whatever the working directory happens to be). Else the store's default."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :]).resolve()
    return (db.parent / "mlruns" / re.sub(r"[^A-Za-z0-9._-]", "_", experiment)).as_uri()


def server_reachable(uri: str) -> bool:
    """False, after one warning per process and URI, when ``uri`` is an http(s) tracking server
    that does not accept a connection within ``PROBE_TIMEOUT_S``. Also lowers MLflow's HTTP
    retries and timeout (``HTTP_DEFAULTS``) for this process. True for any other store."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return True
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if uri in _unreachable:
        return False
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        _unreachable[uri] = str(err)
        warnings.warn(
            f"MLflow tracking server {uri} is not reachable ({err}); continuing without tracking "
            "(start the server, or unset MLFLOW_TRACKING_URI to log to ./mlflow.db)",
            stacklevel=3,
        )
        return False
    return True


@atexit.register
def _fail_open_runs() -> None:
    """A run still open at exit was never closed by the code that opened it: it did not finish."""
    error = getattr(sys, "last_value", None)
    for run in list(_open_runs):
        if error is not None:
            run.fail(error)
        else:
            run.end("FAILED", failure="process exited before the run was closed")
