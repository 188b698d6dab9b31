"""Generate the synthetic subject (the embedded default data) from params.yaml's `synthetic` section."""

from __future__ import annotations

import argparse
from pathlib import Path

from eavatar.config import apply_overrides, load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: synthetic)")
    p.add_argument("--out", type=Path, default=Path("data/synthetic"), help="subject folder to write")


def run(args: argparse.Namespace) -> int:
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

    cfg = apply_overrides(SyntheticConfig(), load_params(args.params, "synthetic"), f"{args.params}:synthetic")
    path = generate_synthetic_subject(args.out, cfg)
    print(f"synthetic subject written to {path}")
    return 0
