"""Export an avatar as a standard 3DGS PLY: canonical, or at a subject frame's expression and pose, or at named coefficients."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--out", type=Path, required=True, help="PLY file to write")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--canonical", action="store_true", help="G0 in head space (default when nothing else is given)")
    group.add_argument("--frame", type=int, help="use expression and head pose of this frame of --data")
    group.add_argument("--set", nargs="*", default=None, metavar="LABEL=VALUE", help="expression coefficients by name, reference pose")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder (with --frame)")


def run(args: argparse.Namespace) -> int:
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.ply import export_canonical_ply, export_frame_ply
    from eavatar.cli.render import expression_from_names

    avatar, info = load_avatar(args.avatar)
    if args.frame is not None:
        from eavatar.data.subject import load_subject
        from eavatar.drive import frame_controls

        subject = load_subject(args.data)
        if not 0 <= args.frame < len(subject.image_paths):
            raise SystemExit(f"--frame {args.frame}: {subject.root} has frames 0..{len(subject.image_paths) - 1}")
        path = export_frame_ply(args.out, avatar, *frame_controls(subject, args.frame))
    elif args.set is not None:
        values = {}
        for item in args.set:
            name, _, value = item.partition("=")
            try:
                values[name] = float(value)
            except ValueError:
                raise SystemExit(f"--set {item}: expected LABEL=VALUE with a number") from None
        code = expression_from_names(values, info.expression_labels, "--set")
        path = export_frame_ply(args.out, avatar, code, torch.tensor(info.reference_head_pose))
    else:
        path = export_canonical_ply(args.out, avatar)
    print(f"wrote {path}")
    return 0
