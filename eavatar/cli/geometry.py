"""Stage I (params.yaml `geometry`): fit the SDF head mesh to the subject with the prior; Chamfer to ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: geometry)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--prior", type=Path, default=Path("artifacts/prior/prior.ply"), help="head-space prior mesh (eavatar prior)")
    p.add_argument("--out", type=Path, default=Path("artifacts/geometry"), help="folder for mesh.ply, geometry.pt, history.csv")
    p.add_argument("--metrics", type=Path, default=Path("metrics/geometry.json"), help="geometry metrics JSON (dvc metrics)")
    p.add_argument("--avatar", type=Path, default=None, help="also measure this trained avatar's Gaussian centres")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.geometry import geometry_stage

    summary = geometry_stage(args.params, args.data, args.prior, args.out, args.metrics, args.avatar)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("test", "gaussians")} | {"test_chamfer": summary.get("test", {}).get("chamfer")}, indent=2))
    print(f"wrote {args.out / 'mesh.ply'}")
    return 0
