"""Projection of 3D Gaussians to screen-space ellipses, in gsplat 1.4's conventions.

Shared by the CPU backend and by tests; the numbers (eps2d = 0.3 on the 2D covariance,
the 1.3 x field-of-view clamp of the Jacobian, 3-sigma integer radii, near/far culling)
are gsplat's, so both backends cull and blur the same Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0, also the PLY f_dc scale (eavatar/avatar/ply.py)
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def quat_to_rotmat(quats: Tensor) -> Tensor:  # [..., 4] wxyz, any norm -> [..., 3, 3]
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))  # fmt: skip


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:  # [N, 4], [N, 3] linear -> [N, 3, 3]
    """Sigma = R S S^T R^T."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def sh_to_rgb(sh_degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """View-dependent colour from real SH coefficients [N, K, 3] (K >= (degree+1)^2), 3DGS's +0.5 offset and clamp."""
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be 0..3, got {sh_degree}")
    if coeffs.shape[-2] < (sh_degree + 1) ** 2:
        raise ValueError(f"colors has {coeffs.shape[-2]} SH coefficients, sh_degree {sh_degree} needs {(sh_degree + 1) ** 2}")
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    bases = [torch.full_like(x, SH_C0)]
    if sh_degree >= 1:
        bases += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if sh_degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        bases += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if sh_degree >= 3:
        bases += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    basis = torch.stack(bases, dim=-1)  # [N, B]
    rgb = (basis[..., None] * coeffs[..., : basis.shape[-1], :]).sum(-2)
    return torch.clamp_min(rgb + 0.5, 0.0)


@dataclass
class Projected:
    """Screen-space Gaussians of one camera; ``means2d`` keeps gsplat's [1, N, 2] so its .grad feeds densification."""

    means2d: Tensor  # [1, N, 2] pixels
    conics: Tensor  # [N, 3] upper triangle of the inverse 2D covariance
    depths: Tensor  # [N] camera z
    radii: Tensor  # [N] int32, 0 = culled


def project(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e10,
) -> Projected:
    """EWA splatting of N Gaussians through a pinhole camera (OpenCV axes)."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = means @ R.T + t
    covars_c = R @ covariance_3d(quats, scales) @ R.T
    tx, ty, tz = means_c.unbind(-1)
    in_depth = (tz > near) & (tz < far)
    tz = torch.where(in_depth, tz, torch.ones_like(tz))  # keeps culled Gaussians finite (and their gradients zero)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    txc = tz * torch.clamp(tx / tz, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz * torch.clamp(ty / tz, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], -1).reshape(-1, 2, 3)
    cov2d = J @ covars_c @ J.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[:, 0, 0], 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1]
    det = a * c - b * b
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)[None]
    with torch.no_grad():
        half_trace = 0.5 * (a + c)
        radius = torch.ceil(3.0 * torch.sqrt(half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))))
        m = means2d[0]
        inside = (m[:, 0] + radius > 0) & (m[:, 0] - radius < width) & (m[:, 1] + radius > 0) & (m[:, 1] - radius < height)
        radius = torch.where((det > 0) & in_depth & inside, radius, torch.zeros_like(radius))
    return Projected(means2d, conics, means_c[:, 2], radius.to(torch.int32))
