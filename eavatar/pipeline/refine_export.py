"""A subject whose training frames carry the codes and head poses refined in training.

The residuals learnt by tracking refinement (``avatar.pt``'s ``refinement``) applied to the
subject the avatar was trained on, written as a new subject folder (docs/subject-format.md)
that points at the same images: train another avatar on it, compare the tracked and refined
codes in a notebook, or hand the poses to another tool. Frames outside the training split keep
the tracker's values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eavatar.errors import EAvatarError


def refined_controls(avatar_path: Path, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's expression [N, d_exp] and head pose [N, 4, 4] with the refinement applied,
    and which frames it changed ([N] bool)."""
    from eavatar.avatar.checkpoint import load_avatar, load_refinement
    from eavatar.avatar.refinement import pose_correction
    from eavatar.data.subject import load_subject

    avatar, _ = load_avatar(avatar_path)
    refinement = load_refinement(avatar_path)
    if refinement is None:
        raise EAvatarError(f"{avatar_path}: trained without tracking refinement (pipeline.model.refinement.enabled false): no refined codes or poses to export")
    subject = load_subject(data)
    if subject.d_exp != refinement["expression"].shape[1]:
        raise EAvatarError(f"{subject.transforms_path}: expression_space has {subject.d_exp} coefficients, {avatar_path} refined {refinement['expression'].shape[1]}")
    position = {(str(s), int(t)): k for k, (s, t) in enumerate(refinement["instants"])}
    train = subject.split("train")
    missing = [(subject.sequences[i], int(subject.timesteps[i])) for i in train if (subject.sequences[i], int(subject.timesteps[i])) not in position]
    if missing:
        raise EAvatarError(f"{subject.transforms_path}: training instant {missing[0]} (sequence, timestep) has no residual in {avatar_path}: not the subject it was trained on")
    expressions, poses = subject.expressions.copy(), subject.head_poses.astype(np.float64).copy()
    changed = np.zeros(subject.num_frames, dtype=bool)
    with torch.no_grad():
        for i in train:
            k = position[(subject.sequences[i], int(subject.timesteps[i]))]
            expressions[i] += refinement["expression"][k].numpy()
            correction = pose_correction(refinement["pose"][k].double(), avatar.center.double(), avatar.radius.double()).numpy()
            poses[i] = poses[i] @ correction
            changed[i] = True
    return expressions, poses, changed


def export_refined_subject(avatar_path: Path, data: Path, out: Path) -> Path:
    """Write ``out``/transforms.json: ``data``'s, its training frames' ``expression`` and ``head_pose``
    refined, file paths pointing at ``data``'s files; validated (files included). Returns its path."""
    from eavatar.data.subject import load_subject, transforms_moved_to, write_transforms

    subject = load_subject(data)
    expressions, poses, changed = refined_controls(avatar_path, data)
    out = Path(out)
    if out.resolve() == subject.root.resolve():
        raise EAvatarError(f"{out}: is the subject itself; export the refined subject to another folder")
    meta = transforms_moved_to(subject, out)
    for i, frame in enumerate(meta["frames"]):
        if changed[i]:
            frame["expression"] = [float(v) for v in expressions[i]]
            R = poses[i][:3, :3]
            u, _, vt = np.linalg.svd(R)  # float64 product of rotations: re-orthonormalise to the format's tolerance
            poses[i][:3, :3] = u @ vt
            frame["head_pose"] = poses[i].tolist()
    meta["refined_from"] = {"subject": str(subject.root), "avatar": str(avatar_path), "frames": int(changed.sum())}
    path = write_transforms(out, meta)
    load_subject(out)  # the files too: a subject a user can train on
    return path
