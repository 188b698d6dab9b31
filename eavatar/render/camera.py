"""A pinhole camera in the rasteriser's convention (OpenCV world-to-camera, as gsplat takes it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Flips camera y and z (its own inverse): transforms.json / nerfstudio cameras look down -z with
#: y up (OpenGL), gsplat and most trackers (NeRSemble, GHA, INSTA) look down +z with y down (OpenCV).
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def look_at_c2w(eye, target, up=(0.0, 1.0, 0.0)) -> Tensor:  # [3], [3], [3] -> [4, 4]
    """OpenGL camera-to-world at ``eye`` looking at ``target`` (camera -z towards it, +y towards ``up``).

    Takes tensors or arrays; the result has ``eye``'s float dtype (numpy float64 stays float64).

    >>> look_at_c2w(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3))[:3, 3].tolist()
    [0.0, 0.0, 2.0]
    """
    eye = torch.as_tensor(eye)
    eye = eye if eye.is_floating_point() else eye.float()
    target, up = (torch.as_tensor(v, dtype=eye.dtype, device=eye.device) for v in (target, up))
    back = torch.nn.functional.normalize(eye - target, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(up, back), dim=0)
    c2w = torch.eye(4, dtype=eye.dtype, device=eye.device)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, torch.linalg.cross(back, right), back, eye
    return c2w


@dataclass
class Camera:
    """One view: ``viewmat`` [4, 4] world-to-camera (OpenCV axes), ``K`` [3, 3] pixels."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.viewmat.shape != (4, 4) or self.K.shape != (3, 3):
            raise ValueError(f"Camera: viewmat must be [4, 4] and K [3, 3], got {tuple(self.viewmat.shape)} and {tuple(self.K.shape)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Camera: image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_c2w_opengl(cls, c2w: Tensor, fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> "Camera":
        """From a transforms.json-style camera-to-world matrix ([3, 4] or [4, 4], OpenGL axes)."""
        c2w = torch.as_tensor(c2w, dtype=torch.float32)
        full = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
        full[: c2w.shape[0], :4] = c2w
        c2w_cv = full @ OPENGL_TO_OPENCV.to(c2w)
        viewmat = torch.linalg.inv(c2w_cv)
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=c2w.dtype, device=c2w.device)
        return cls(viewmat, K, int(width), int(height))

    def to(self, device: torch.device | str) -> "Camera":
        return Camera(self.viewmat.to(device), self.K.to(device), self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.viewmat.device

    @property
    def camera_center(self) -> Tensor:  # [3] world
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    def pixels(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # [N, 3] world -> [N], [N], [N] bool
        """(column, row) of the pixel each world point projects into, and whether it lands in the
        image in front of the camera; computed in the points' dtype (float64 where a pixel
        boundary must not move with rounding)."""
        view, K = self.viewmat.to(points), self.K.to(points)
        local = points @ view[:3, :3].T + view[:3, 3]
        uv = local[:, :2] / local[:, 2:].clamp_min(1e-6) * K.diagonal()[:2] + K[:2, 2]
        col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        seen = (local[:, 2] > 0) & (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        return col, row, seen
