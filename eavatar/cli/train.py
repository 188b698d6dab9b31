"""``eavatar train``: ``ns-train eavatar`` with a params.yaml section applied, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from eavatar.config import load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--section", default="train", help="its section of overrides of `ns-train eavatar` (video/dvc.yaml: train_video)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/train"), help="output folder (avatar.pt, nerfstudio run)")
    p.add_argument("--history", type=Path, default=Path("metrics/train_history.csv"), help="copy of the loss curve for `dvc plots`")
    p.add_argument("--run-name", default="", help="MLflow run name (default: train-run)")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.train import check_inputs, ns_train_command, train, training_config

    where = f"{args.params}:{args.section}"
    overrides = load_params(args.params, args.section)
    cfg = training_config(overrides, args.data, args.out, where)
    cfg.mlflow_run_name = args.run_name
    check_inputs(cfg, args.data, where)
    print(f"the same training through nerfstudio: {ns_train_command(overrides, args.data)}")
    final = train(cfg, args.data, args.out, args.history)
    print(f"avatar written to {final}")
    return 0
