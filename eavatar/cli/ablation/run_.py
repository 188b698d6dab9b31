"""One ablation run: a variant of params.yaml `ablation` at one seed, trained, evaluated on the test split, mouth and eye crops.

The command of ablation/dvc.yaml's run stage; the variant and seed are params.yaml
`ablation.variant` and `ablation.seed` (each queued experiment sets them with -S) unless given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (sections: train, ablation)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/ablation/run"), help="avatar.pt, params.yaml, eval/ (and the nerfstudio run under train/)")
    p.add_argument("--metrics", type=Path, default=Path("metrics/ablation/run.json"), help="the run's test metrics (dvc metrics)")
    p.add_argument("--history", type=Path, default=Path("metrics/ablation/history.csv"), help="its training history (dvc plots)")
    p.add_argument("--crops", type=Path, default=Path("metrics/ablation/crops.png"), help="ground truth and render around the mouth and the eyes, for the report's figure")
    p.add_argument("--variant", default=None, help="default: params ablation.variant")
    p.add_argument("--seed", type=int, default=None, help="default: params ablation.seed")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.ablation import run_variant

    row = run_variant(args.params, args.data, args.out, args.metrics, args.history, args.crops, args.variant, args.seed)
    print(json.dumps(row, indent=1))
    return 0
