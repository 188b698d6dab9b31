"""Write a subject whose training frames carry the head poses and codes refined in training (tracking refinement)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--avatar", type=Path, required=True, help="avatar trained with pipeline.model.refinement.enabled")
    p.add_argument("--data", type=Path, required=True, help="the subject it was trained on")
    p.add_argument("--out", type=Path, required=True, help="folder of the refined subject (its transforms.json points at --data's images)")


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.refine_export import export_refined_subject

    print(f"wrote {export_refined_subject(args.avatar, args.data, args.out)}")
    return 0
