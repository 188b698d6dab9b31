"""Alignment of a prior mesh to the subject's head space: centre and scale, then ICP (open3d).

A generated mesh lives in its generator's frame (TRELLIS: a unit cube, its own up axis), so
the alignment is a similarity: first the centroids and mean radii are matched, then
open3d's point-to-point ICP with scaling refines it from several starting orientations
(principal axes matched, and the 24 axis-aligned ones: an unknown up axis is common), the
best coarse fit is refined with all points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import trimesh

from eavatar.metrics.geometry import chamfer


@dataclass
class AlignConfig:
    """How the prior is registered to the target (params.yaml ``prior.align``)."""

    target: str = "visual_hull"
    """What the prior is aligned to: visual_hull (from the masks) | template (the subject's tracker mesh)."""
    samples: int = 5000
    """Surface points per mesh for the registration."""
    rotation_search: bool = True
    """Try principal-axis and the 24 axis-aligned starts before ICP (off: trust the prior's axes)."""
    max_distance: float = 0.3
    """ICP correspondence radius, in units of the target's mean radius."""
    iterations: int = 200
    """ICP iterations of the final refinement (a quarter of them for each start)."""
    seed: int = 0
    """Seed of the surface sampling."""


@dataclass
class Alignment:
    """A similarity x -> scale * R x + t (``matrix`` [4, 4]) and how well it fits."""

    matrix: np.ndarray  # [4, 4]
    metrics: dict = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return float(np.cbrt(np.linalg.det(self.matrix[:3, :3])))

    def apply(self, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        out = mesh.copy()
        out.apply_transform(self.matrix)
        return out


def centre_and_scale(points: np.ndarray) -> tuple[np.ndarray, float]:
    """c = mean point, s = mean distance to c (the paper's L_mesh statistics)."""
    c = points.mean(0)
    return c, float(np.linalg.norm(points - c, axis=1).mean())


def axis_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map coordinate axes to coordinate axes."""
    rots = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            R = np.zeros((3, 3))
            R[range(3), perm] = signs
            if np.linalg.det(R) > 0:
                rots.append(R)
    return rots


def start_rotations(src: np.ndarray, tgt: np.ndarray) -> list[np.ndarray]:
    """Initial rotations: principal axes of source onto target (4 sign choices), then the 24 axis maps."""
    def axes(p: np.ndarray) -> np.ndarray:
        return np.linalg.eigh(np.cov((p - p.mean(0)).T))[1]  # columns, ascending variance

    A, B = axes(src), axes(tgt)
    pca = []
    for signs in itertools.product((1, -1), repeat=2):
        D = np.diag([signs[0], signs[1], 1.0])
        R = B @ D @ A.T
        if np.linalg.det(R) < 0:
            R = B @ np.diag([signs[0], signs[1], -1.0]) @ A.T
        pca.append(R)
    return pca + axis_rotations()


def align_similarity(source: trimesh.Trimesh, target: trimesh.Trimesh, cfg: AlignConfig) -> Alignment:
    """The similarity that carries ``source`` onto ``target``, with the fit logged in ``metrics``.

    ``metrics``: chamfer_before (after centring and scaling only) and chamfer_after, both in
    units of the target's mean radius, ICP fitness and inlier RMSE, scale, start orientation.
    """
    import open3d as o3d

    src, _ = trimesh.sample.sample_surface(source, cfg.samples, seed=cfg.seed)
    tgt, _ = trimesh.sample.sample_surface(target, cfg.samples, seed=cfg.seed + 1)
    c_s, s_s = centre_and_scale(src)
    c_t, s_t = centre_and_scale(tgt)
    estimation = o3d.pipelines.registration.TransformationEstimationPointToPoint(with_scaling=True)

    def icp(a: np.ndarray, b: np.ndarray, init: np.ndarray, iterations: int):
        pa = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(a))
        pb = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(b))
        criteria = o3d.pipelines.registration.ICPConvergenceCriteria(1e-9, 1e-9, iterations)
        return o3d.pipelines.registration.registration_icp(pa, pb, cfg.max_distance * s_t, init, estimation, criteria)

    starts = start_rotations(src, tgt) if cfg.rotation_search else [np.eye(3)]
    coarse_s, coarse_t = src[: cfg.samples // 4], tgt[: cfg.samples // 4]
    best = None
    for k, R in enumerate(starts):
        init = np.eye(4)
        init[:3, :3] = (s_t / s_s) * R
        init[:3, 3] = c_t - init[:3, :3] @ c_s
        T = np.asarray(icp(coarse_s, coarse_t, init, cfg.iterations // 4).transformation)
        err = chamfer(coarse_s @ T[:3, :3].T + T[:3, 3], coarse_t)
        if best is None or err < best[1]:
            best = (init, err, k, T)
    init, _, k, T_coarse = best
    before = chamfer(src @ init[:3, :3].T + init[:3, 3], tgt) / s_t
    reg = icp(src, tgt, T_coarse, cfg.iterations)
    T = np.asarray(reg.transformation)
    after = chamfer(src @ T[:3, :3].T + T[:3, 3], tgt) / s_t
    metrics = {
        "chamfer_before": before,
        "chamfer_after": after,
        "icp_fitness": float(reg.fitness),
        "icp_inlier_rmse": float(reg.inlier_rmse) / s_t,
        "start_orientation": k,
        "target_mean_radius": s_t,
    }
    out = Alignment(T.copy(), metrics)
    out.metrics["scale"] = out.scale
    return out
