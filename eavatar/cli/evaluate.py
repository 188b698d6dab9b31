"""Evaluate an avatar on every split of a subject but train: image, region, geometric and re-tracking metrics (docs/metrics.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: evaluate)")
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/eval"), help="folder for the per-frame CSVs (per_frame_<split>.csv, geometry_<split>.csv) and samples")
    p.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"), help="averaged metrics JSON (dvc metrics): the headline split flat, every split under splits")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.evaluate import evaluate_stage

    print(json.dumps(evaluate_stage(args.params, args.avatar, args.data, args.out, args.metrics), indent=2))
    return 0
