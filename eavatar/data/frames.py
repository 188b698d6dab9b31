"""One frame of a subject as rendering and the losses see it: its camera, its controls, its ground truth.

Training (nerfstudio's batches), evaluation, rendering and the notebooks all come through
here, so they agree on the camera convention and on what the target image is: the image
composited over the background through its RGBA alpha and its foreground mask. Subjects
whose images keep their capture background (the importers link images in place) are
trained and scored on the head alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from eavatar.data.subject import Subject
from eavatar.render.camera import Camera


def frame_arrays(subject: Subject, indices: Sequence[int] | np.ndarray | Tensor) -> dict[str, Tensor]:
    """Camera and controls of frames ``indices`` [K] as float32 tensors (``size`` int64).

    Returns c2w [K, 4, 4] (OpenGL camera-to-world), intrinsics [K, 4] (fx, fy, cx, cy),
    size [K, 2] (w, h), expression [K, d_exp] and head_pose [K, 4, 4] (world-from-head).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    return {
        "c2w": torch.as_tensor(subject.c2w[idx], dtype=torch.float32),
        "intrinsics": torch.as_tensor(subject.intrinsics[idx], dtype=torch.float32),
        "size": torch.as_tensor(subject.image_sizes[idx], dtype=torch.int64),
        "expression": torch.as_tensor(subject.expressions[idx], dtype=torch.float32),
        "head_pose": torch.as_tensor(subject.head_poses[idx], dtype=torch.float32),
    }


def frame_camera(subject: Subject, index: int, device: torch.device | str = "cpu") -> Camera:
    """The rasteriser camera of frame ``index``."""
    a = frame_arrays(subject, [index])
    fx, fy, cx, cy = a["intrinsics"][0].tolist()
    w, h = a["size"][0].tolist()
    return Camera.from_c2w_opengl(a["c2w"][0], fx, fy, cx, cy, w, h).to(device)


def frame_controls(subject: Subject, index: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Expression [d_exp] and world-from-head pose [4, 4] of frame ``index``."""
    a = frame_arrays(subject, [index])
    return a["expression"][0].to(device), a["head_pose"][0].to(device)


def unit_float(x: np.ndarray | Tensor) -> Tensor:
    """Pixel values in [0, 1] as float32, scaled by dtype: integers by their maximum (uint8: 255), bool 0/1, floats as they are."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "ui":
            return torch.from_numpy(x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if x.dtype == torch.bool:
        return x.float()
    if not x.is_floating_point():
        return x.float() / float(torch.iinfo(x.dtype).max)
    return x.float()


def ground_truth(
    image: np.ndarray | Tensor,  # [H, W], [H, W, 1|2|3|4]: gray, gray+alpha, RGB or RGBA; integer (uint8: 0..255) or float (0..1)
    mask: np.ndarray | Tensor | None = None,  # [H, W] or [H, W, 1] foreground: bool, integer or float in [0, 1]
    background: Tensor | Sequence[float] | None = None,  # [3], default white
) -> Tensor:  # [H, W, 3] float32
    """The target image: ``image`` composited over ``background`` through its alpha (if any) times ``mask`` (if any).

    Scale comes from the dtype, never from the values: a dark float image stays as it is and a
    dark uint8 image is still divided by 255. The result lives on ``background``'s device when
    it is a tensor (the model's), else on ``image``'s. nerfstudio's batch mask (bool [H, W, 1])
    and mask files (uint8, 255 = head) both work.

    >>> ground_truth(torch.full((2, 2, 3), 128, dtype=torch.uint8), torch.tensor([[True, False], [True, True]]))[0, 1].tolist()
    [1.0, 1.0, 1.0]
    """
    device = background.device if isinstance(background, Tensor) else None
    img = unit_float(image.to(device) if isinstance(image, Tensor) and device is not None else image)  # move the uint8 bytes, not floats
    img = img if device is None else img.to(device)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"ground_truth: image must be [H, W] or [H, W, 1|2|3|4], got {list(img.shape)}")
    channels = img.shape[-1]
    rgb = img[..., : 3 if channels >= 3 else 1].expand(*img.shape[:2], 3)
    alpha = img[..., -1:] if channels in (2, 4) else None
    if mask is not None:
        m = unit_float(mask).to(img.device)
        m = m[..., None] if m.ndim == 2 else m[..., :1]
        if m.shape[:2] != img.shape[:2]:
            raise ValueError(f"ground_truth: mask is {list(m.shape[:2])} but the image is {list(img.shape[:2])} (H, W)")
        alpha = m if alpha is None else alpha * m
    if alpha is None:
        return rgb.contiguous()
    bg = torch.ones(3) if background is None else torch.as_tensor(background, dtype=torch.float32)
    return rgb * alpha + (1.0 - alpha) * bg.to(img).reshape(1, 1, 3)


def read_mask(path: str | Path) -> Tensor:  # -> [H, W, 1] bool
    """A mask file as nerfstudio's datamanager reads it (nonzero = foreground), so evaluation and
    training composite the same target: soft mask edges are already in the image's pixels."""
    m = np.asarray(iio.imread(path))
    return torch.from_numpy((m if m.ndim == 2 else m[..., 0]) > 0)[..., None]


def load_region_map(path: str | Path) -> Tensor:  # -> [H, W] uint8
    """A region label image (one integer label per pixel; the subject's ``region_labels`` name them)."""
    labels = np.asarray(iio.imread(path))
    if labels.ndim == 3:
        labels = labels[..., 0]
    return torch.from_numpy(labels.astype(np.uint8))


def read_ground_truth(path: str | Path, background: Tensor | Sequence[float] | None = None, mask_path: str | Path | None = None) -> Tensor:
    """:func:`ground_truth` of an image file and its optional mask file: [H, W, 3] float."""
    return ground_truth(np.asarray(iio.imread(path)), read_mask(mask_path) if mask_path is not None else None, background)


def load_ground_truth(subject: Subject, index: int, background: Tensor | Sequence[float] | None = None) -> Tensor:
    """The target of frame ``index``: its image over ``background`` through its fg mask (fg_mask_path) when it has one."""
    return read_ground_truth(subject.image_paths[index], background, subject.mask_paths[index])


def to_uint8(rgb: Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8 array for image files and widgets."""
    return (rgb.detach().clamp(0, 1) * 255).round().byte().cpu().numpy()
