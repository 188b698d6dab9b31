"""Readers of what has been run: MLflow runs and their curves, DVC experiments, training histories.

Every loader returns ``(table or None, note)``: a missing store or file is a note the
notebook prints, never an exception, so notebook 04 runs on a fresh clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from eavatar.tracking.history import read_history
from eavatar.tracking.mlflow_run import DEFAULT_EXPERIMENT, flatten


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def mlflow_runs(uri: str, experiment: str = DEFAULT_EXPERIMENT) -> tuple[pd.DataFrame | None, str]:
    """One row per run (newest first): name, stage, status, start, metrics.* and tags; params are left out."""
    db = _sqlite_file(uri)
    if db is not None and not db.is_file():  # search_runs would create an empty store here
        return None, f"no MLflow store at {db} (runs appear after `dvc repro` or `eavatar train`)"
    import mlflow

    try:
        mlflow.set_tracking_uri(uri)
        runs = mlflow.search_runs(experiment_names=[experiment], order_by=["attributes.start_time DESC"])
    except Exception as err:  # noqa: BLE001 - a broken store is reported, the notebook goes on
        return None, f"MLflow store {uri} could not be read: {err}"
    if runs.empty:
        return None, f"no runs in experiment '{experiment}' at {uri}"
    keep = ["run_id", "tags.mlflow.runName", "tags.stage", "status", "start_time"]
    metrics = sorted(c for c in runs.columns if c.startswith("metrics."))
    table = runs[[c for c in keep if c in runs.columns] + metrics].rename(columns={"tags.mlflow.runName": "run", "tags.stage": "stage"})
    return table.rename(columns=lambda c: c.removeprefix("metrics.")), f"{len(table)} MLflow runs in '{experiment}' at {uri}"


def mlflow_history(uri: str, run_id: str, keys: list[str]) -> pd.DataFrame:
    """Long table (step, metric, value) of the given metric keys of one run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows = [(m.step, key, m.value) for key in keys for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def training_history(uri: str, runs: pd.DataFrame | None, csv: str | Path, max_runs: int = 5) -> tuple[pd.DataFrame | None, str]:
    """Loss and train-metric curves (step, metric, value) of the newest MLflow training run that logged
    any (of the latest ``max_runs``), else of the train stage's CSV."""
    if runs is not None and "stage" in runs:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        for _, run in runs[runs["stage"] == "train"].head(max_runs).iterrows():
            keys = sorted(k for k in client.get_run(run["run_id"]).data.metrics if k.startswith(("loss", "train")))
            history = mlflow_history(uri, run["run_id"], keys)
            if len(history["step"].unique()) > 1:
                return history, f"MLflow run {run['run']} ({run['run_id'][:8]})"
    return csv_history(csv)


def csv_history(path: str | Path) -> tuple[pd.DataFrame | None, str]:
    """metrics/train_history.csv (what `dvc plots show` draws) as a long table (step, metric, value)."""
    path = Path(path)
    if not path.is_file():
        return None, f"{path} not found (written by the train stage)"
    wide = read_history(path)
    return wide.melt(id_vars="step", var_name="metric", value_name="value").dropna(), f"{path}: {len(wide)} logged steps"


def dvc_executable() -> str:
    """The dvc beside this Python (a kernel started from .venv/bin/python may not have .venv/bin on PATH)."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() else "dvc"


def dvc_experiments(root: str | Path = ".", timeout: float = 120.0) -> tuple[pd.DataFrame | None, str]:
    """`dvc exp show --json` as one row per revision: name, rev, time, scalar metrics and the params that differ."""
    try:
        proc = subprocess.run([dvc_executable(), "exp", "show", "--json"], cwd=root, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"`dvc exp show` could not run: {err}"
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        return None, f"`dvc exp show` failed: {last[-1] if last else f'exit status {proc.returncode}'}"
    try:
        rows = dvc_rows(json.loads(proc.stdout or "[]"))
    except (ValueError, TypeError, KeyError) as err:
        return None, f"`dvc exp show --json` gave output this notebook does not understand: {err!r}"
    if not rows:
        return None, "no DVC revisions or experiments (`dvc exp run` makes some)"
    table = pd.DataFrame(rows)
    params = [c for c in table.columns if c.startswith("params:")]
    varying = [c for c in params if table[c].astype(str).nunique() > 1]
    table = table.drop(columns=[c for c in params if c not in varying])
    n_exp = int((table["kind"] == "experiment").sum())
    return table, f"{len(table)} DVC revisions ({n_exp} experiments); {len(varying)} of {len(params)} params differ and are shown"


def dvc_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten dvc's JSON (baseline revisions, each with experiments) to rows of scalars; an
    experiment's ``state`` is its queue state (queued, running, success, failed)."""
    rows = []
    for entry in entries:
        rows.append(_dvc_row(entry, "workspace" if entry.get("rev") == "workspace" else "commit"))
        for group in entry.get("experiments") or []:
            state = (group.get("executor") or {}).get("state")
            rows += [{**_dvc_row(rev, "experiment"), "state": state} for rev in group.get("revs", [])]
    return rows


def _dvc_row(entry: dict[str, Any], kind: str) -> dict[str, Any]:
    data = entry.get("data") or {}
    rev = str(entry.get("rev", ""))
    short = rev if kind == "workspace" else rev[:7]
    row: dict[str, Any] = {"name": entry.get("name") or short, "kind": kind, "rev": short, "time": data.get("timestamp")}
    for section in ("metrics", "params"):
        for file, content in (data.get(section) or {}).items():
            for key, value in flatten((content or {}).get("data") or {}).items():
                if isinstance(value, (int, float, str, bool)) or value is None:
                    row[f"{section}:{file}:{key}" if section == "params" else f"{file}:{key}"] = value
    return row
