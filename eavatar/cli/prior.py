"""Make the geometry prior (params.yaml `prior`): a generated mesh aligned to head space, or the offline visual hull."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: prior)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/prior"), help="folder for prior.ply and alignment.json")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.prior import prior_stage

    report = prior_stage(args.params, args.data, args.out)
    print(json.dumps({k: v for k, v in report.items() if k != "matrix"}, indent=2))
    print(f"wrote {args.out / 'prior.ply'}")
    return 0
