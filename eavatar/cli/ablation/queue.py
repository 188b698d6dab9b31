"""Queue the ablation: one DVC experiment per variant x seed of params.yaml `ablation`, run by N workers.

For each variant V and seed K: `dvc exp run --queue -S ablation.variant=V -S ablation.seed=K
ablation/dvc.yaml`; then `dvc queue start -j N`, and (unless --no-wait) wait until all are done.
An experiment whose code, data and params DVC has run before is replayed from its run cache.
Follow with `dvc queue status`, `dvc queue logs <name>`, `dvc exp show`; then `eavatar ablation report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: ablation)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="queue workers (each trains one run at a time)")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="return once the workers are started")
    p.add_argument("--root", type=Path, default=Path("."), help="the project (git + DVC repository)")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.ablation_sweep import queue_ablation

    queue_ablation(args.root, args.params, jobs=args.jobs, wait=args.wait)
    return 0
