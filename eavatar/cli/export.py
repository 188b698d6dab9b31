"""Export an avatar as a standard 3DGS PLY: canonical, or at a subject frame's expression and pose, or at named coefficients."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--out", type=Path, required=True, help="PLY file to write")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--canonical", action="store_true", help="G0 in head space (default when nothing else is given)")
    group.add_argument("--frame", type=int, help="use expression and head pose of this frame of --data")
    group.add_argument("--set", nargs="*", default=None, metavar="LABEL=VALUE", help="expression coefficients by name, reference pose")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder (with --frame)")


def label_values(items: list[str]) -> dict[str, float]:
    """``["jaw_open=1", ...]`` -> {"jaw_open": 1.0, ...}."""
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            values[name] = float(value)
        except ValueError:
            raise SystemExit(f"--set {item}: expected LABEL=VALUE with a number") from None
    return values


def run(args: argparse.Namespace) -> int:
    from eavatar.pipeline.export import export_ply

    values = label_values(args.set) if args.set is not None else None
    print(f"wrote {export_ply(args.avatar, args.out, frame=args.frame, data=args.data, expression=values)}")
    return 0
