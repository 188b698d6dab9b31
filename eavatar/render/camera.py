"""A pinhole camera in the rasteriser's convention (OpenCV world-to-camera, as gsplat takes it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# nerfstudio / transforms.json cameras look down -z with y up (OpenGL); gsplat wants +z forward, y down.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


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
