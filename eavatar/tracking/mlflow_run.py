"""MLflow logging that can never kill a training run.

A local SQLite store in the working directory by default (no server to start);
``MLFLOW_TRACKING_URI`` selects a server. Every call is guarded: the first failure warns,
names the tracking URI, and turns logging off for the rest of the run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

DEFAULT_EXPERIMENT = "eavatar"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else ``sqlite:///<cwd>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


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
    """One MLflow run; use as a context manager. Methods are no-ops after a tracking failure."""

    def __init__(self, run_name: str, experiment: str = DEFAULT_EXPERIMENT, tags: Mapping[str, str] | None = None):
        self.run_name = run_name
        self.experiment = experiment
        self.tags = dict(tags or {})
        self.enabled = True
        self.run_id: str | None = None

    def _guard(self, what: str, fn, *args, **kwargs):
        if not self.enabled:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            self.enabled = False
            warnings.warn(f"MLflow {what} failed at {tracking_uri()} ({err!r}); training continues without tracking")
            return None

    def __enter__(self) -> "TrackedRun":
        def start():
            import mlflow

            mlflow.set_tracking_uri(tracking_uri())
            mlflow.set_experiment(self.experiment)
            run = mlflow.start_run(run_name=self.run_name, tags={**provenance_tags(), **self.tags})
            self.run_id = run.info.run_id

        self._guard("start", start)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import mlflow

        self._guard("end", mlflow.end_run, status="FAILED" if exc_type else "FINISHED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        self._guard("log_params", mlflow.log_params, flat)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        clean = {k.replace("/", "_"): float(v) for k, v in metrics.items() if v is not None}
        self._guard("log_metrics", mlflow.log_metrics, clean, step=step)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        import mlflow

        for p in paths:
            p = Path(p)
            if p.is_dir():
                self._guard("log_artifacts", mlflow.log_artifacts, str(p), artifact_path)
            elif p.is_file():
                self._guard("log_artifact", mlflow.log_artifact, str(p), artifact_path)
