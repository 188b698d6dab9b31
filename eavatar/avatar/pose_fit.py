"""A held-out frame's head pose fitted to its image with the avatar frozen (evaluation protocol (b)).

A monocular tracker's head pose is off by a degree or so; scored at that pose, an avatar's
error at the outline is the tracker's as much as its own. Monocular protocols (IMavatar,
PointAvatar, INSTA-style test-time alignment) therefore fit each test frame's pose with the
avatar frozen before scoring. Only the rigid pose moves: fitting the expression too would write
the answer into the expression metric.
"""

from __future__ import annotations

import torch
from torch import Tensor

from eavatar.avatar.model import HeadAvatar
from eavatar.avatar.pose import apply_head_pose
from eavatar.avatar.refinement import pose_correction
from eavatar.render import Camera, rasterize


def fit_head_pose(
    avatar: HeadAvatar,
    camera: Camera,
    expression: Tensor,  # [d_exp], held fixed
    head_pose: Tensor,  # [4, 4] world-from-head, the tracker's
    target: Tensor,  # [H, W, 3] the frame's ground truth over ``background``
    background: Tensor,  # [3]
    steps: int,
    lr: float,
    init: Tensor | None = None,  # [6] a start (the previous frame's fit), else zero
) -> Tensor:
    """The pose residual [6] (axis-angle, translation in head radii; :func:`pose_correction`) that
    minimises the L1 photometric error after ``steps`` Adam steps; the avatar's weights and the
    code get no gradient. The fitted pose is ``head_pose @ pose_correction(residual, ...)``."""
    residual = (torch.zeros(6, device=head_pose.device) if init is None else init.detach().clone()).requires_grad_(True)
    if steps <= 0:
        return residual.detach()
    with torch.no_grad():
        g = avatar.frame(expression, head_pose)  # world Gaussians at the tracked pose
        inverse = torch.linalg.inv(head_pose)
    optimizer = torch.optim.Adam([residual], lr=lr)
    for _ in range(steps):
        world_correction = head_pose @ pose_correction(residual, avatar.center, avatar.radius) @ inverse  # H C H^-1
        means, quats = apply_head_pose(g.means, g.quats, world_correction)
        out = rasterize(means, quats, g.scales, g.opacities, g.colors, camera, background=background, eps2d=avatar.cfg.pixel_filter)
        loss = (out.rgb - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return residual.detach()


def fitted_pose(avatar: HeadAvatar, head_pose: Tensor, residual: Tensor) -> Tensor:
    """[4, 4] the world-from-head pose that ``residual`` makes of ``head_pose``."""
    return head_pose @ pose_correction(residual, avatar.center, avatar.radius)
