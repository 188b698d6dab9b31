"""Ablation of sparse control and deformation-aware splitting: each variant, several seeds, one budget.

Every (variant, seed) trains with `eavatar train` (a subprocess, so runs share no state)
on the same subject and budget, then is evaluated on the held-out split. A run already
finished with the same parameters is reused, so a killed ablation continues where it
stopped. Writes the per-run rows and per-variant mean and spread (metrics/ablation.json),
the markdown table (docs/ablation.md), the figures, and an MLflow run with all of it.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eavatar.cli.params import load_params

#: Columns of the table, in order: key in the per-run rows, header, digits, better direction.
COLUMNS = [
    ("psnr", "PSNR (dB)", 2, "higher"),
    ("ssim", "SSIM", 4, "higher"),
    ("lpips", "LPIPS", 4, "lower"),
    ("mouth_psnr", "mouth PSNR", 2, "higher"),
    ("eyes_psnr", "eyes PSNR", 2, "higher"),
    ("flicker", "flicker (8-bit)", 3, "lower"),
    ("num_gaussians", "Gaussians", 0, None),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (sections: train, ablation)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/ablation"), help="one folder per (variant, seed)")
    p.add_argument("--metrics", type=Path, default=Path("metrics/ablation.json"), help="per-run rows and per-variant summary")
    p.add_argument("--report", type=Path, default=Path("docs/ablation.md"), help="markdown table (the docs page)")
    p.add_argument("--figures", type=Path, default=Path("docs/images"), help="folder for the figures")


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with nested ``overrides`` applied key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def run_params(train: dict, ablation: dict, variant: str, seed: int) -> dict:
    """The train section of one run: the demo's, the variant's overrides, the seed and the shared budget."""
    overrides = ablation["variants"][variant] or {}
    return deep_merge(train, {**overrides, "seed": int(seed), "max_steps": int(ablation["max_steps"])})


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
    from eavatar.cli.evaluate import evaluate
    from eavatar.cli.train import with_seed_mesh

    row_path = run_dir / "row.json"
    inputs = with_seed_mesh(params, (params.get("model") or {}).get("init_mesh", ""), f"{run_name}: model.init_mesh")
    if row_path.is_file():
        row = json.loads(row_path.read_text())
        if row.get("params") == inputs:  # same params and the same seed mesh
            print(f"{run_name}: reusing {row_path}")
            return row
    print(f"{run_name}: training {params['max_steps']} steps", flush=True)
    seconds = train_run(run_dir, params, data, run_name)
    summary = evaluate(run_dir / "train" / "avatar.pt", data, "test", run_dir / "eval")
    history = read_history(run_dir / "history.csv")
    row = {k: v for k, v in summary.items() if k in {c[0] for c in COLUMNS}}
    row["num_gaussians"] = float(history["train/num_gaussians"][-1])
    row["train_seconds"] = seconds  # wall time on a possibly shared machine: docs/benchmarks.md has the controlled cost
    row["params"] = inputs
    row_path.write_text(json.dumps(row, indent=1))
    return row


def read_history(path: Path) -> dict[str, np.ndarray]:
    """history.csv (the trainer's loss curve) as columns."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    values = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    return {name: values[:, k] for k, name in enumerate(header)}


def summarise(rows: list[dict], variants: list[str]) -> list[dict]:
    """Per variant: n, and mean and sample standard deviation (ddof=1) of every column over seeds."""
    out = []
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        entry: dict[str, Any] = {"variant": variant, "n": len(mine)}
        for key, *_ in COLUMNS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if len(values) == len(mine) and values:
                entry[f"{key}_mean"] = float(np.mean(values))
                entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            else:
                entry[f"{key}_mean"] = entry[f"{key}_std"] = None
        out.append(entry)
    return out


def markdown_table(summary: list[dict]) -> str:
    """Mean ± standard deviation over seeds; the best mean of each quality column in bold."""
    header = "| variant | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    best = {}
    for key, _, _, better in COLUMNS:
        means = [s[f"{key}_mean"] for s in summary if s[f"{key}_mean"] is not None]
        if better and means:
            best[key] = max(means) if better == "higher" else min(means)
    for s in summary:
        cells = []
        for key, _, digits, _ in COLUMNS:
            mean, std = s[f"{key}_mean"], s[f"{key}_std"]
            if mean is None:
                cells.append("n/a")
                continue
            text = f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(f"**{text}**" if best.get(key) == mean and len(summary) > 1 else text)
        lines.append(f"| {s['variant']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from eavatar import ablation_report
    from eavatar.tracking.mlflow_run import TrackedRun

    train = load_params(args.params, "train")
    ablation = load_params(args.params, "ablation")
    for key in ("variants", "seeds", "max_steps"):
        if key not in ablation:
            raise SystemExit(f"{args.params}:ablation.{key}: missing")
    variants, seeds = list(ablation["variants"]), [int(s) for s in ablation["seeds"]]
    rows = []
    for variant in variants:
        for seed in seeds:
            name = f"ablation/{variant}/seed{seed}"
            row = run_one(args.out / variant / f"seed{seed}", run_params(train, ablation, variant, seed), args.data, name)
            rows.append({"variant": variant, "seed": seed, **{k: v for k, v in row.items() if k != "params"}})
    summary = summarise(rows, variants)
    protocol = {"subject": str(args.data), "split": "test", "max_steps": int(ablation["max_steps"]), "seeds": seeds, "variants": ablation["variants"]}
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps({"protocol": protocol, "runs": rows, "summary": summary}, indent=1))
    table = markdown_table(summary)
    figures = ablation_report.figures(args.out, args.data, variants, seeds, args.figures)
    ablation_report.write_report(args.report, table, protocol, rows, figures)
    with TrackedRun(run_name="ablation", tags={"stage": "ablation"}) as tracked:
        tracked.log_params(protocol)
        for s in summary:
            tracked.log_metrics({f"{s['variant']}/{k}": v for k, v in s.items() if k.endswith(("_mean", "_std")) and v is not None})
        tracked.log_artifacts([args.metrics, args.report, *figures], artifact_path="ablation")
    print(table)
    return 0
