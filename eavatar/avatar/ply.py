"""Standard 3DGS PLY export, the fields common splat viewers read.

Fields: x y z, nx ny nz (zero), f_dc_0..2 (degree-0 SH), f_rest_0..44 (zero: colour is
view-independent), opacity (logit), scale_0..2 (log), rot_0..3 (unit wxyz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from eavatar.avatar.model import HeadAvatar
from eavatar.render.projection import SH_C0

NUM_REST = 45  # degree-3 SH minus the DC term, x 3 channels


def gaussian_ply_fields() -> list[str]:
    return (
        ["x", "y", "z", "nx", "ny", "nz"]
        + [f"f_dc_{i}" for i in range(3)]
        + [f"f_rest_{i}" for i in range(NUM_REST)]
        + ["opacity"]
        + [f"scale_{i}" for i in range(3)]
        + [f"rot_{i}" for i in range(4)]
    )


def write_gaussians_ply(
    path: str | Path,
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N] in (0, 1)
    colors: Tensor,  # [N, 3] in [0, 1]
) -> Path:
    """Write Gaussians as a binary little-endian 3DGS PLY; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = means.shape[0]
    eps = 1e-6
    columns = [
        means.detach().cpu().numpy(),
        np.zeros((n, 3), np.float32),
        ((colors.detach().cpu().clamp(0, 1) - 0.5) / SH_C0).numpy(),
        np.zeros((n, NUM_REST), np.float32),
        torch.logit(opacities.detach().cpu().clamp(eps, 1 - eps))[:, None].numpy(),
        scales.detach().cpu().clamp_min(1e-12).log().numpy(),
        torch.nn.functional.normalize(quats.detach().cpu(), dim=-1).numpy(),
    ]
    data = np.concatenate(columns, axis=1).astype(np.float32)
    records = np.rec.fromarrays(data.T, dtype=[(name, "f4") for name in gaussian_ply_fields()])
    PlyData([PlyElement.describe(records, "vertex")], text=False).write(str(path))
    return path


@torch.no_grad()
def export_frame_ply(path: str | Path, avatar: HeadAvatar, expression: Tensor, head_pose: Tensor) -> Path:
    """The avatar at one expression [d_exp] and world-from-head pose [4, 4]."""
    g = avatar.frame(expression, head_pose)
    return write_gaussians_ply(path, g.means, g.quats, g.scales, g.opacities, g.colors)


@torch.no_grad()
def export_canonical_ply(path: str | Path, avatar: HeadAvatar) -> Path:
    """G0 in head space, coloured by the generator at the neutral code (colour is not stored in G0)."""
    p = avatar.canonical.params
    device = p["means"].device
    g = avatar.frame(torch.zeros(avatar.d_exp, device=device), torch.eye(4, device=device))
    return write_gaussians_ply(path, p["means"], p["quats"], p["scales"].exp(), torch.sigmoid(p["opacities"]), g.colors)
