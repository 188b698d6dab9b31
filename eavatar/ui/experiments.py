"""Experiments side by side for notebook 04: metrics and ablation tables, curves and bar figures.

The runs themselves are read by :mod:`eavatar.tracking.runs`; every loader here also returns
a note instead of raising when its file is missing, so the notebook runs on a fresh clone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from eavatar.tracking.mlflow_run import flatten


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


def ablation_experiments(root: str | Path, params: str | Path | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """The ablation's DVC experiments (eavatar.pipeline.ablation_sweep): (every finished run of
    ablation/dvc.yaml with its metrics, whether the report uses it and why not, summary of the runs
    it uses, note). The report uses, per variant and seed, the newest experiment whose command,
    code, data and params are the workspace's."""
    from eavatar.pipeline import ablation_sweep as sweep
    from eavatar.reports.ablation import summarise

    root = Path(root)
    try:
        collection = sweep.collect(root, Path(params) if params else root / "params.yaml")
        table = pd.DataFrame(sweep.experiments_table(collection))
        if table.empty:
            return None, None, f"no finished experiments of {sweep.DVC_FILE} (`make ablation` queues them)"
        rows, _, _ = sweep.run_rows(root, collection)
    except Exception as err:  # noqa: BLE001 - a note, the notebook goes on
        return None, None, f"ablation experiments could not be read: {err}"
    metrics = pd.DataFrame(rows).drop(columns=["variant", "seed", "rev"], errors="ignore")
    if len(metrics):
        table = table.merge(metrics, on="experiment", how="left")
    summary = pd.DataFrame(summarise(rows, collection.variants)).set_index("variant") if rows else None
    missing = f"; no up-to-date run for {len(collection.missing)} (variant, seed)" if collection.missing else ""
    note = f"{len(table)} finished experiments of {sweep.DVC_FILE}, {len(rows)} used{missing}"
    return table.set_index(["variant", "seed"]), summary, note


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
