"""Geometry metrics against ground-truth meshes: Chamfer distance and normal consistency.

Both shapes become point sets with normals (a mesh: area-weighted surface samples with
their face normals; Gaussians: centres with their shortest axis), nearest neighbours come
from KD-trees (scipy cKDTree), never an N x M matrix.

* chamfer = (accuracy + completeness) / 2, accuracy = mean distance from the prediction to
  the ground truth, completeness = mean distance from the ground truth to the prediction
  (head-space units).
* normal_consistency = mean over both directions of |n_pred . n_gt| at nearest neighbours
  (1 = every normal agrees up to sign; unoriented, so Gaussians' axes qualify; left out for
  Gaussians when fewer than half of them are flat, as round ones have no normal).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree


def mesh_samples(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface points [n, 3] and their face normals [n, 3]."""
    points, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points), np.asarray(mesh.face_normals[face])


def nearest_both_ways(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-neighbour distances and indices a -> b ([N], [N]) and b -> a ([M], [M]) of points [N, 3], [M, 3]."""
    d_ab, i_ab = cKDTree(b).query(a)
    d_ba, i_ba = cKDTree(a).query(b)
    return d_ab, i_ab, d_ba, i_ba


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance of points [N, 3] and [M, 3]: the mean of both mean nearest-neighbour distances."""
    d_ab, _, d_ba, _ = nearest_both_ways(a, b)
    return 0.5 * float(d_ab.mean() + d_ba.mean())


def point_metrics(pred: np.ndarray, pred_normals: np.ndarray | None, gt: np.ndarray, gt_normals: np.ndarray) -> dict[str, float]:
    """Chamfer parts and normal consistency of points [N, 3] (normals [N, 3] or None) against [M, 3]."""
    d_pred, i_pred, d_gt, i_gt = nearest_both_ways(pred, gt)
    out = {"accuracy": float(d_pred.mean()), "completeness": float(d_gt.mean())}
    out["chamfer"] = 0.5 * (out["accuracy"] + out["completeness"])
    if pred_normals is not None:
        a = np.abs((pred_normals * gt_normals[i_pred]).sum(-1)).mean()
        b = np.abs((gt_normals * pred_normals[i_gt]).sum(-1)).mean()
        out["normal_consistency"] = float(0.5 * (a + b))
    return out


def mesh_metrics(pred: trimesh.Trimesh, gt: trimesh.Trimesh, n: int = 50000, seed: int = 0) -> dict[str, float]:
    """Chamfer and normal consistency of two meshes, sampled with ``n`` points each."""
    p, pn = mesh_samples(pred, n, seed)
    g, gn = mesh_samples(gt, n, seed + 1)
    return point_metrics(p, pn, g, gn)


def gaussian_points(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Centres [N, 3] and unit normals [N, 3] (each Gaussian's shortest axis) of Gaussians (quats wxyz, linear scales)."""
    from eavatar.render.projection import quat_to_rotmat

    R = quat_to_rotmat(quats.detach())  # [N, 3, 3], columns = axes
    shortest = scales.detach().argmin(-1)
    normals = torch.gather(R, 2, shortest[:, None, None].expand(-1, 3, 1))[..., 0]
    return means.detach().cpu().numpy(), normals.cpu().numpy()


def distinct_frames(subject, split: str, limit: int) -> list[int]:
    """One frame per (sequence, timestep) of ``split`` with a ground-truth mesh, at most ``limit``, evenly spaced."""
    seen: dict[tuple, int] = {}
    for i in subject.split(split):
        key = (subject.sequences[i], int(subject.timesteps[i]))
        if subject.mesh_paths[i] is not None and key not in seen:
            seen[key] = int(i)
    frames = list(seen.values())
    if limit and len(frames) > limit:
        frames = [frames[k] for k in np.linspace(0, len(frames) - 1, limit).round().astype(int)]
    return frames


def summarise(rows: list[dict], labels: Iterable[str]) -> dict:
    """Means over rows, and per dominant expression (the label of the largest coefficient; 'neutral' when all < 0.2)."""
    keys = [k for k in ("chamfer", "accuracy", "completeness", "normal_consistency") if rows and k in rows[0]]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["expression"], []).append(r)
    out["per_expression"] = {name: {k: float(np.mean([r[k] for r in g])) for k in keys} | {"frames": len(g)} for name, g in sorted(groups.items())}
    return out


def dominant_expression(code: np.ndarray, labels: list[str]) -> str:
    return "neutral" if float(np.max(code, initial=0.0)) < 0.2 else labels[int(np.argmax(code))]


@torch.no_grad()
def gaussian_geometry_metrics(avatar, subject, frames: list[int]) -> dict:
    """Chamfer / normal consistency of an avatar's Gaussian centres (head space) against the frames' GT meshes."""
    rows = []
    device = avatar.center.device
    for i in frames:
        pose = torch.tensor(subject.head_poses[i], dtype=torch.float32, device=device)
        g = avatar.frame(torch.tensor(subject.expressions[i], device=device), pose)
        head_means = (g.means - pose[:3, 3]) @ pose[:3, :3]  # undo the rigid pose: R^T (x - t)
        head_quats = _rotate_quats(g.quats, pose[:3, :3].T)
        pts, nrm = gaussian_points(head_means, head_quats, g.scales)
        sorted_scales = g.scales.sort(dim=-1).values
        if float((sorted_scales[:, 0] < 0.5 * sorted_scales[:, 1]).float().mean()) < 0.5:
            nrm = None  # mostly round Gaussians (e.g. at initialisation) have no meaningful normal
        gt_pts, gt_nrm = mesh_samples(trimesh.load(subject.mesh_paths[i], process=False), 50000, seed=1)
        rows.append({"frame": i, "expression": dominant_expression(subject.expressions[i], subject.expression_labels), **point_metrics(pts, nrm, gt_pts, gt_nrm)})
    return {**summarise(rows, subject.expression_labels), "frames": rows}


def _rotate_quats(quats: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    from eavatar.avatar.pose import matrix_to_quat, quat_multiply

    return quat_multiply(matrix_to_quat(R).expand_as(quats), quats)
