"""Export an avatar as a standard 3DGS PLY: canonical, at a subject frame, or at named coefficients."""

from __future__ import annotations

from pathlib import Path

import torch


def export_ply(avatar_path: Path, out: Path, frame: int | None = None, data: Path | None = None, expression: dict[str, float] | None = None) -> Path:
    """G0 in head space by default; ``frame`` of subject ``data`` (its expression and head pose); or
    ``expression`` {label: value} at the reference head pose. Returns the PLY's path."""
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.ply import export_canonical_ply, export_frame_ply
    from eavatar.pipeline.render import expression_from_names

    avatar, info = load_avatar(avatar_path)
    if frame is not None:
        from eavatar.data.frames import frame_controls
        from eavatar.data.subject import load_subject

        subject = load_subject(data)
        if not 0 <= frame < subject.num_frames:
            raise SystemExit(f"--frame {frame}: {subject.root} has frames 0..{subject.num_frames - 1}")
        return export_frame_ply(out, avatar, *frame_controls(subject, frame))
    if expression is not None:
        code = expression_from_names(expression, info.expression_labels, "--set")
        return export_frame_ply(out, avatar, code, torch.tensor(info.reference_head_pose))
    return export_canonical_ply(out, avatar)
