"""Sparse expression control (EAvatar, Sec. "key Gaussians"): control Gaussians move their neighbours.

Per frame, Gaussians whose expression displacement |f_exp_def| exceeds ``tau`` become control
Gaussians; every other Gaussian within ``radius`` of control Gaussians is additionally moved
by a normalised Gaussian-kernel blend of their displacements:

    x'_j = x_j + sum_{i in C_j} w_ij dx_i,   w_ij = exp(-|x_j - x_i|^2 / sigma^2) / sum_k exp(-|x_j - x_k|^2 / sigma^2)

Units: all three lengths are in head radii (the avatar's ``radius`` buffer), so one value
serves every subject; the paper leaves tau's units unstated (docs/method.md). Distances are
measured between canonical centres, so the neighbourhoods do not flicker with the expression.
Neighbours come from a KD-tree (scipy cKDTree): no N x N matrix is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


@dataclass
class SparseControlConfig:
    """Control selection and propagation (all lengths in head radii)."""

    enabled: bool = True
    """Propagate control displacements to neighbours (off: the GHA-like baseline; at the demo's
    budget neither is ahead beyond the seed spread, docs/ablation.md)."""
    tau: float = 0.05
    """Control threshold on |f_exp_def| (paper: 0.3, units unstated)."""
    radius: float = 0.1
    """Neighbourhood r of a control Gaussian (paper: open)."""
    sigma: float = 0.05
    """Kernel width sigma of the blend weights (paper: open)."""


def control_mask(displacement: Tensor, tau: float) -> Tensor:
    """[N] bool: |dx_i| > tau (strictly)."""
    return displacement.detach().norm(dim=-1) > tau


def neighbour_pairs(points: Tensor, is_control: Tensor, radius: float, tree: cKDTree | None = None) -> tuple[Tensor, Tensor]:
    """(j, i) index pairs: non-control j within ``radius`` of control i (|x_j - x_i| <= radius).

    ``tree``: a KD-tree of all ``points`` to reuse (points that do not move between frames);
    only the control Gaussians' tree is built per call.
    """
    device = points.device
    ctrl = torch.nonzero(is_control).squeeze(1)
    if len(ctrl) == 0 or len(ctrl) == len(is_control):
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    pts = points.detach().cpu().numpy().astype(np.float64)
    tree = cKDTree(pts) if tree is None else tree
    ctrl = ctrl.cpu().numpy()
    pairs = cKDTree(pts[ctrl]).sparse_distance_matrix(tree, radius, output_type="ndarray")
    i, j = ctrl[pairs["i"]], pairs["j"].astype(np.int64)
    free = ~is_control.cpu().numpy()[j]
    return torch.from_numpy(j[free]).to(device), torch.from_numpy(i[free]).to(device)


def propagate(points: Tensor, displacement: Tensor, is_control: Tensor, radius: float, sigma: float, tree: cKDTree | None = None) -> Tensor:
    """Displacements [N, 3] after control Gaussians moved their neighbours.

    Differentiable in ``displacement`` (gradients reach the control Gaussians' MLP outputs
    through the blend) and in ``points``; control rows and rows reached by no control
    Gaussian are returned unchanged. ``tree``: as in :func:`neighbour_pairs`.
    """
    j, i = neighbour_pairs(points, is_control, radius, tree)
    if len(j) == 0:
        return displacement
    n = points.shape[0]
    logits = -((points.index_select(0, j) - points.index_select(0, i)) ** 2).sum(-1) / sigma**2
    peak = torch.full((n,), -torch.inf, dtype=logits.dtype, device=logits.device).scatter_reduce(0, j, logits.detach(), "amax")
    w = torch.exp(logits - peak.index_select(0, j))
    w = w / torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, j, w).index_select(0, j)
    return displacement + torch.zeros_like(displacement).index_add(0, j, w[:, None] * displacement.index_select(0, i))
