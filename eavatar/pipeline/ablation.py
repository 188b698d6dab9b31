"""The ablation runner: each variant, several seeds, one budget; then the table, page and figures.

Every (variant, seed) trains with `eavatar train` (a subprocess, so runs share no state) on the
same subject and budget, then is evaluated on the held-out split. A run already finished with
the same parameters and seed mesh is reused, so a killed ablation continues where it stopped.
Writes the per-run rows and per-variant mean and spread (metrics/ablation.json), the page
(docs/ablation.md, eavatar.reports.ablation), the figures, and an MLflow run with all of it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from eavatar.config import load_params
from eavatar.reports import ablation as report
from eavatar.tracking.history import read_history

BUDGET = "max_num_iterations"  # the ablation section's key for the shared step budget


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with nested ``overrides`` applied key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def run_params(train: dict, ablation: dict, variant: str, seed: int) -> dict:
    """The train section of one run: the demo's, the variant's overrides, the seed and the shared budget."""
    overrides = ablation["variants"][variant] or {}
    return deep_merge(train, deep_merge(overrides, {"machine": {"seed": int(seed)}, BUDGET: int(ablation[BUDGET])}))


def run_key(params: dict, where: str) -> dict:
    """What decides whether a finished run can be reused: its params and the hash of its seed mesh
    (a new Stage I mesh at the same path trains again)."""
    mesh = ((params.get("pipeline") or {}).get("model") or {}).get("init_mesh", "")
    if not mesh:
        return params
    if not Path(mesh).is_file():
        raise FileNotFoundError(f"{where}: pipeline.model.init_mesh {mesh}: file not found (make it with `eavatar geometry` or `dvc repro geometry`)")
    return {**params, "init_mesh_sha256": hashlib.sha256(Path(mesh).read_bytes()).hexdigest()}


def train_run(run_dir: Path, params: dict, data: Path, run_name: str) -> float:
    """Train one run through `eavatar train`; returns its wall time in seconds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "params.yaml").write_text(yaml.safe_dump({"train": params}, sort_keys=False))
    cmd = [sys.executable, "-m", "eavatar.cli.main", "train", "--params", str(run_dir / "params.yaml"), "--data", str(data)]
    cmd += ["--out", str(run_dir / "train"), "--history", str(run_dir / "history.csv"), "--run-name", run_name]
    start = time.perf_counter()
    log = run_dir / "train.log"
    with log.open("w") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"{run_name}: training failed; see {log}")
    return time.perf_counter() - start


def run_one(run_dir: Path, params: dict, data: Path, run_name: str) -> dict:
    """Train and evaluate one (variant, seed), or reuse its row when it already ran with these params."""
    from eavatar.pipeline.evaluate import evaluate

    row_path = run_dir / "row.json"
    key = run_key(params, run_name)
    if row_path.is_file():
        row = json.loads(row_path.read_text())
        if row.get("params") == key:
            print(f"{run_name}: reusing {row_path}")
            return row
    print(f"{run_name}: training {params[BUDGET]} steps", flush=True)
    seconds = train_run(run_dir, params, data, run_name)
    summary = evaluate(run_dir / "train" / "avatar.pt", data, "test", run_dir / "eval")
    row = {k: v for k, v in summary.items() if k in {c[0] for c in report.COLUMNS}}
    row["num_gaussians"] = float(read_history(run_dir / "history.csv")["train/num_gaussians"].iloc[-1])
    row["train_seconds"] = seconds  # wall time on a possibly shared machine: docs/benchmarks.md has the controlled cost
    row["params"] = key
    row_path.write_text(json.dumps(row, indent=1))
    return row


def run_ablation(params_file: Path, data: Path, out: Path, metrics: Path, page: Path, figures: Path) -> str:
    """``eavatar ablation``: every (variant, seed) of params ``ablation``, then metrics, page, figures and an MLflow run.

    Returns the markdown table.
    """
    from eavatar.tracking.mlflow_run import TrackedRun

    train = load_params(params_file, "train")
    ablation = load_params(params_file, "ablation")
    for key in ("variants", "seeds", BUDGET):
        if key not in ablation:
            raise SystemExit(f"{params_file}:ablation.{key}: missing")
    variants, seeds = list(ablation["variants"]), [int(s) for s in ablation["seeds"]]
    rows = []
    for variant in variants:
        for seed in seeds:
            name = f"ablation/{variant}/seed{seed}"
            row = run_one(out / variant / f"seed{seed}", run_params(train, ablation, variant, seed), data, name)
            rows.append({"variant": variant, "seed": seed, **{k: v for k, v in row.items() if k != "params"}})
    summary = report.summarise(rows, variants)
    protocol = {"subject": str(data), "split": "test", "max_steps": int(ablation[BUDGET]), "seeds": seeds, "variants": ablation["variants"]}
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"protocol": protocol, "runs": rows, "summary": summary}, indent=1))
    table = report.markdown_table(summary)
    images = report.figures(out, data, variants, seeds, figures)
    report.write_report(page, table, protocol, rows, images)
    with TrackedRun(run_name="ablation", tags={"stage": "ablation"}) as tracked:
        tracked.log_params(protocol)
        for s in summary:
            tracked.log_metrics({f"{s['variant']}/{k}": v for k, v in s.items() if k.endswith(("_mean", "_std")) and v is not None})
        tracked.log_artifacts([metrics, page, *images], artifact_path="ablation")
    return table
