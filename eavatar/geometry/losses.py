"""Stage I loss terms (docs/geometry.md gives each formula and why).

Lengths are in units of the tet grid's half extent h, so the paper's weights apply to any
subject scale. Every function returns an unweighted scalar; weights live in StageIConfig.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from scipy.spatial import cKDTree
from torch import Tensor


def silhouette_loss(alpha: Tensor, mask: Tensor) -> Tensor:  # [H, W], [H, W] -> []
    """1 - soft IoU of the rendered alpha and the foreground mask (both in [0, 1])."""
    inter = (alpha * mask).sum()
    union = (alpha + mask - alpha * mask).sum()
    return 1.0 - inter / union.clamp_min(1e-6)


def offset_loss(exp_offsets: Tensor, pose_offsets: Tensor) -> Tensor:  # [V, 3], [V, 3] -> []
    """Mean squared expression offset + mean squared pose offset: the canonical mesh must explain the head."""
    return exp_offsets.square().sum(-1).mean() + pose_offsets.square().sum(-1).mean()


def mesh_edges(faces: Tensor) -> Tensor:  # [F, 3] -> [E, 2] unique undirected edges
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 0)
    return torch.unique(torch.sort(e, dim=1).values, dim=0)


def laplacian_loss(vertices: Tensor, faces: Tensor) -> Tensor:  # [V, 3], [F, 3] -> []
    """Uniform Laplacian: mean over vertices of |v_i - mean of its neighbours|^2."""
    e = mesh_edges(faces)
    i, j = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
    deg = torch.zeros(len(vertices), dtype=vertices.dtype, device=vertices.device).index_add_(0, i, torch.ones_like(i, dtype=vertices.dtype))
    mean_nb = torch.zeros_like(vertices).index_add_(0, i, vertices[j]) / deg.clamp_min(1)[:, None]
    used = deg > 0
    return (vertices[used] - mean_nb[used]).square().sum(-1).mean()


def landmark_loss(sdf_fn: Callable[[Tensor], Tensor], landmarks: Tensor) -> Tensor:  # [L, 3] canonical -> []
    """Mean |f_sdf| at 3D landmarks brought to canonical space: they must lie on the surface."""
    return sdf_fn(landmarks).abs().mean()


def mesh_prior_loss(vertices: Tensor, prior_vertices: Tensor) -> Tensor:  # [V, 3], [P, 3] -> []
    """The paper's L_mesh = |c_prior - c_pred|^2 + (s_prior - s_pred)^2, c the vertex mean, s the mean
    vertex-to-centre distance."""
    c_pred, c_prior = vertices.mean(0), prior_vertices.mean(0)
    s_pred = (vertices - c_pred).norm(dim=-1).mean()
    s_prior = (prior_vertices - c_prior).norm(dim=-1).mean()
    return (c_prior - c_pred).square().sum() + (s_prior - s_pred).square()


class SurfacePrior:
    """The stronger prior term: symmetric Chamfer (squared) plus normal disagreement to the prior surface.

    L_surf = mean_p |p - q(p)|^2 + mean_q |q - p(q)|^2 + w_n [mean_p (1 - |n_p . n_q(p)|) + mean_q (...)],
    nearest neighbours found with a KD-tree (no N x M matrix), distances differentiable in p.
    """

    def __init__(self, points: Tensor, normals: Tensor, normal_weight: float):
        self.points = points  # [Q, 3]
        self.normals = normals  # [Q, 3]
        self.tree = cKDTree(points.detach().cpu().numpy())
        self.normal_weight = normal_weight

    def __call__(self, points: Tensor, normals: Tensor) -> Tensor:  # [P, 3], [P, 3] -> []
        p_np = points.detach().cpu().numpy()
        to_prior = torch.as_tensor(self.tree.query(p_np)[1], dtype=torch.long, device=points.device)
        to_pred = torch.as_tensor(cKDTree(p_np).query(self.points.cpu().numpy())[1], dtype=torch.long, device=points.device)
        dist = (points - self.points[to_prior]).square().sum(-1).mean() + (self.points - points[to_pred]).square().sum(-1).mean()
        cos_a = (normals * self.normals[to_prior]).sum(-1).abs()
        cos_b = (self.normals * normals[to_pred]).sum(-1).abs()
        return dist + self.normal_weight * ((1 - cos_a).mean() + (1 - cos_b).mean())


def cosine_anneal(step: int, total: int) -> float:
    """1 at step 0, 0 at ``total`` and after (the surface prior guides early, the images decide late)."""
    if total <= 0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0)))
