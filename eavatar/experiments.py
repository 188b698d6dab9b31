"""Experiments side by side for notebook 04: MLflow runs, DVC experiments, training curves, metrics, ablation.

Every loader returns ``(table or None, note)``: a missing store or file is a note the
notebook prints, never an exception, so the notebook runs on a fresh clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from eavatar.tracking.mlflow_run import DEFAULT_EXPERIMENT, flatten


def store_uri(root: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI, else the project's ``<root>/mlflow.db`` (eavatar.tracking's default, from another cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


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
    wide = pd.read_csv(path)
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
    """Flatten dvc's JSON (baseline revisions, each with experiments) to rows of scalars."""
    rows = []
    for entry in entries:
        rows.append(_dvc_row(entry, "workspace" if entry.get("rev") == "workspace" else "commit"))
        for group in entry.get("experiments") or []:
            rows += [_dvc_row(rev, "experiment") for rev in group.get("revs", [])]
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


def eval_metrics(path: str | Path) -> tuple[pd.DataFrame | None, str]:
    """metrics/eval.json as a one-column table of its scalar entries."""
    path = Path(path)
    if not path.is_file():
        return None, f"{path} not found (written by the evaluate stage)"
    data = flatten(json.loads(path.read_text()))
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str)) or v is None}
    return pd.DataFrame({"value": scalars}), f"{path}: {len(scalars)} entries"


def ablation_tables(path: str | Path) -> tuple[dict | None, pd.DataFrame | None, pd.DataFrame | None, str]:
    """metrics/ablation.json: (protocol, runs table, summary table, note); columns are whatever the file has."""
    path = Path(path)
    if not path.is_file():
        return None, None, None, f"{path} not found (written by the ablation command)"
    try:
        data = json.loads(path.read_text())
        runs, summary = pd.DataFrame(data.get("runs") or []), pd.DataFrame(data.get("summary") or [])
    except ValueError as err:
        return None, None, None, f"{path}: not valid JSON or not tables ({err})"
    for table in (runs, summary):
        if "variant" in table.columns:
            table.set_index([c for c in ("variant", "seed") if c in table.columns], inplace=True)
    return data.get("protocol") or {}, runs, summary, f"{path}: {len(runs)} runs, {len(summary)} variants"


def curves_figure(history: pd.DataFrame, title: str = "training curves"):
    """Plotly: one panel per metric of a long (step, metric, value) table, losses on a log axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = list(history["metric"].unique())
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=metrics, vertical_spacing=0.3 / max(len(metrics), 1))
    for row, metric in enumerate(metrics, start=1):
        part = history[history["metric"] == metric].sort_values("step")
        fig.add_trace(go.Scatter(x=part["step"], y=part["value"], mode="lines", name=metric, showlegend=False), row=row, col=1)
        if str(metric).startswith("loss") and (part["value"] > 0).all():
            fig.update_yaxes(type="log", row=row, col=1)
    fig.update_layout(title=title, height=max(180 * len(metrics), 300), margin=dict(t=60, b=30))
    return fig


def ablation_figure(summary: pd.DataFrame):
    """Plotly: one panel per ``<metric>_mean`` column of the ablation summary, variants as bars, std as error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    means = [c for c in summary.columns if c.endswith("_mean")]
    fig = make_subplots(rows=1, cols=max(len(means), 1), subplot_titles=[c.removesuffix("_mean") for c in means])
    for col, mean in enumerate(means, start=1):
        std = mean.removesuffix("_mean") + "_std"
        error = dict(type="data", array=summary[std].tolist()) if std in summary.columns else None
        fig.add_trace(go.Bar(x=[str(v) for v in summary.index], y=summary[mean], error_y=error, showlegend=False), row=1, col=col)
    fig.update_layout(height=320, width=max(260 * len(means), 400), margin=dict(t=40, b=30))
    return fig


def side_by_side(tables: dict[str, pd.DataFrame | None | str], max_rows: int = 15) -> str:
    """HTML: titled tables (or notes) next to each other, for display(HTML(...))."""
    parts = []
    for title, table in tables.items():
        body = table.to_html(max_rows=max_rows, max_cols=14, float_format=lambda v: f"{v:.4g}") if isinstance(table, pd.DataFrame) else f"<i>{table}</i>"
        parts.append(f"<div style='flex:1;min-width:0;overflow-x:auto'><h4>{title}</h4>{body}</div>")
    return "<div style='display:flex;gap:2em;align-items:flex-start'>" + "".join(parts) + "</div>"
