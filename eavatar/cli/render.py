"""Render videos and PLYs: a test sequence (ground truth | render) and a novel-view orbit at a chosen expression."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--section", default="render", help="its section with the render settings (video/dvc.yaml: render_video)")
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/render"), help="folder for videos and PLYs")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.render import render_stage

    for path in render_stage(args.params, args.section, args.avatar, args.data, args.out):
        print(f"wrote {path}")
    return 0
