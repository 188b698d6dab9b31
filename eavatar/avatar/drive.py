"""Driving a trained avatar with a subject's frames, and orbit cameras around it.

Shared by evaluation, rendering and the notebooks; a frame's camera, controls and ground
truth come from :mod:`eavatar.data.frames`, so every caller sees one convention.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from eavatar.avatar.model import HeadAvatar
from eavatar.data.frames import frame_camera, frame_controls
from eavatar.data.subject import Subject
from eavatar.render import Camera, RenderOutput
from eavatar.render.camera import look_at_c2w


def orbit_camera(avatar: HeadAvatar, subject: Subject, head_pose: Tensor, azimuth_deg: float, elevation_deg: float, size: int | None = None) -> Camera:
    """A camera on a circle around the posed head, at the training cameras' mean distance and focal.

    azimuth 0 looks at the face (+z of head space); ``size`` rescales the image (and focal).
    """
    train = subject.split("train")
    head_pose = head_pose.detach().cpu()
    target = head_pose[:3, :3] @ avatar.center.cpu() + head_pose[:3, 3]
    radius = float(np.linalg.norm(subject.c2w[train, :3, 3] - target.numpy(), axis=1).mean())
    fx, fy, cx, cy = (float(v) for v in subject.intrinsics[train[0]])
    w, h = (int(v) for v in subject.image_sizes[train[0]])
    k = 1.0 if size is None else size / max(w, h)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = target + radius * torch.tensor([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], dtype=torch.float32)
    cam = Camera.from_c2w_opengl(look_at_c2w(eye, target), fx * k, fy * k, cx * k, cy * k, round(w * k), round(h * k))
    return cam.to(avatar.center.device)


@torch.no_grad()
def render_subject_frame(avatar: HeadAvatar, subject: Subject, index: int, background: Tensor, expression: Tensor | None = None) -> RenderOutput:
    """Render the avatar as seen by frame ``index`` of ``subject``: its camera, pose and expression
    (or ``expression`` [d_exp] instead, e.g. the neutral code that evaluation compares against)."""
    device = background.device
    if subject.d_exp != avatar.d_exp:
        raise ValueError(f"{subject.root}: expression_space has {subject.d_exp} coefficients, the avatar expects {avatar.d_exp}")
    own_expression, head_pose = frame_controls(subject, index, device)
    expression = own_expression if expression is None else expression.to(device)
    return avatar.render(frame_camera(subject, index, device), expression, head_pose, background)
