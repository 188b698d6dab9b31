"""The ablation's report from its finished DVC experiments: metrics/ablation.json, docs/ablation.md, figures.

For each variant and seed of params.yaml `ablation`, the newest finished experiment whose
command, code, data and params are the workspace's; a missing or stale run is an error that says
which and why. Prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: ablation)")
    p.add_argument("--metrics", type=Path, default=Path("metrics/ablation.json"), help="per-run rows and per-variant summary")
    p.add_argument("--report", type=Path, default=Path("docs/ablation.md"), help="markdown page")
    p.add_argument("--figures", type=Path, default=Path("docs/images"), help="folder for the figures")
    p.add_argument("--avatars", type=Path, default=Path("artifacts/ablation"), help="each run's avatar from the DVC cache: <dir>/<variant>/seed<k>/train/avatar.pt")
    p.add_argument("--root", type=Path, default=Path("."), help="the project (git + DVC repository)")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.ablation_sweep import report_ablation

    print(report_ablation(args.root, args.params, args.metrics, args.report, args.figures, args.avatars))
    return 0
