"""Rigid head-pose helpers: matrices, quaternions and the 6-DoF pose code beta."""

from __future__ import annotations

import torch
from torch import Tensor


def matrix_to_quat(R: Tensor) -> Tensor:  # [..., 3, 3] -> [..., 4] wxyz
    """Rotation matrices to unit quaternions (w, x, y, z), numerically stable branchwise form.

    >>> matrix_to_quat(torch.eye(3))
    tensor([1., 0., 0., 0.])
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]: row k is 4*q*q_k, best conditioned for the largest |q_k|
    diag = torch.stack([1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = diag.argmax(dim=-1, keepdim=True)
    q = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:  # [..., 4], [..., 4] -> [..., 4]
    """Hamilton product a * b of wxyz quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def pose_code(head_pose: Tensor) -> Tensor:  # [..., 4, 4] -> [..., 6]
    """The 6-DoF pose code beta fed to the pose branch: axis-angle rotation and translation."""
    q = matrix_to_quat(head_pose[..., :3, :3])
    sin_half = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    axis = q[..., 1:] / sin_half.clamp_min(1e-8)
    return torch.cat([axis * angle, head_pose[..., :3, 3]], dim=-1)


def apply_head_pose(means: Tensor, quats: Tensor, head_pose: Tensor) -> tuple[Tensor, Tensor]:
    """Move head-space Gaussians to world space: X_w = R X + t and Q_w = q_R * Q.

    Args:
        means: [N, 3] head-space centres.
        quats: [N, 4] head-space rotations (wxyz).
        head_pose: [4, 4] world-from-head rigid transform.

    Returns:
        World means [N, 3] and quaternions [N, 4].
    """
    R, t = head_pose[:3, :3], head_pose[:3, 3]
    q_head = matrix_to_quat(R).expand_as(quats)
    return means @ R.T + t, quat_multiply(q_head, quats)
