"""Ablation of sparse control, deformation-aware splitting and the prior: each variant, several seeds, one budget.

Runs eavatar.pipeline.ablation: finished runs are reused; writes metrics/ablation.json,
docs/ablation.md and its figures, and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (sections: train, ablation)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/ablation"), help="one folder per (variant, seed)")
    p.add_argument("--metrics", type=Path, default=Path("metrics/ablation.json"), help="per-run rows and per-variant summary")
    p.add_argument("--report", type=Path, default=Path("docs/ablation.md"), help="markdown table (the docs page)")
    p.add_argument("--figures", type=Path, default=Path("docs/images"), help="folder for the figures")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.ablation import run_ablation

    print(run_ablation(args.params, args.data, args.out, args.metrics, args.report, args.figures))
    return 0
