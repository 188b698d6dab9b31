"""Driving a trained avatar with a subject's frames: cameras, controls, ground truth.

Shared by evaluation, rendering and the notebooks so they all see one convention.
"""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from eavatar.avatar.model import HeadAvatar
from eavatar.data.subject import Subject
from eavatar.render import Camera, RenderOutput


def subject_camera(subject: Subject, index: int, device: torch.device | str = "cpu") -> Camera:
    """The rasteriser camera of frame ``index``."""
    fx, fy, cx, cy = (float(v) for v in subject.intrinsics[index])
    w, h = (int(v) for v in subject.image_sizes[index])
    return Camera.from_c2w_opengl(torch.as_tensor(subject.c2w[index], dtype=torch.float32), fx, fy, cx, cy, w, h).to(device)


def frame_controls(subject: Subject, index: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Expression [d_exp] and world-from-head pose [4, 4] of frame ``index``."""
    return (
        torch.as_tensor(subject.expressions[index], dtype=torch.float32, device=device),
        torch.as_tensor(subject.head_poses[index], dtype=torch.float32, device=device),
    )


def load_rgb(path, background: Tensor | None = None) -> Tensor:  # -> [H, W, 3] float in [0, 1]
    """An image file as float RGB; RGBA is composited over ``background`` (default white)."""
    img = torch.as_tensor(np.asarray(iio.imread(path)), dtype=torch.float32) / 255.0
    if img.ndim == 2:
        img = img[..., None].expand(-1, -1, 3)
    if img.shape[-1] == 4:
        bg = torch.ones(3) if background is None else background.cpu()
        img = img[..., :3] * img[..., 3:] + (1 - img[..., 3:]) * bg
    return img[..., :3].contiguous()


def look_at_c2w(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:  # [3] x2 -> [4, 4]
    """OpenGL camera-to-world looking from ``eye`` at ``target`` (camera -z towards the target)."""
    up = torch.tensor([0.0, 1.0, 0.0]) if up is None else up
    z = torch.nn.functional.normalize(eye - target, dim=0)
    x = torch.nn.functional.normalize(torch.linalg.cross(up, z), dim=0)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, torch.linalg.cross(z, x), z, eye
    return c2w


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


def to_uint8(rgb: Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8 array for image files and widgets."""
    return (rgb.detach().clamp(0, 1) * 255).round().byte().cpu().numpy()


@torch.no_grad()
def render_subject_frame(avatar: HeadAvatar, subject: Subject, index: int, background: Tensor) -> RenderOutput:
    """Render the avatar as seen by frame ``index`` of ``subject`` (its camera, expression and pose)."""
    device = background.device
    if subject.d_exp != avatar.d_exp:
        raise ValueError(f"{subject.root}: expression_space has {subject.d_exp} coefficients, the avatar expects {avatar.d_exp}")
    expression, head_pose = frame_controls(subject, index, device)
    return avatar.render(subject_camera(subject, index, device), expression, head_pose, background)
