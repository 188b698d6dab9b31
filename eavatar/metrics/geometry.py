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


# -- per-region error of the posed avatar -------------------------------------------------------
#: Regions of the geometric error, named as in the subject's ``region_labels``.
GEOMETRY_REGIONS = ("mouth", "eyes", "brows", "skin")
#: PLY vertex property of a ground-truth mesh holding each vertex's region label (region maps' numbering).
VERTEX_REGION_PROPERTY = "region"
#: Gaussians at least this opaque count as surface (``evaluate.geometry_min_opacity``).
MIN_OPACITY = 0.5
_PARTS = ("accuracy", "completeness", "chamfer")


def vertex_regions(path) -> np.ndarray | None:
    """[V] region label of each vertex of a PLY mesh (its vertex property ``region``); None when it has none."""
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    if VERTEX_REGION_PROPERTY not in [p.name for p in vertex.properties]:
        return None
    return np.asarray(vertex[VERTEX_REGION_PROPERTY]).astype(np.int64)


def closest_surface_points(
    points: np.ndarray,  # [N, 3]
    mesh: trimesh.Trimesh,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # [N], [N], [N, 3]
    """Exact distance of each point to the mesh surface, the face of its closest surface point and
    that point's barycentric coordinates (open3d's BVH; no sampling)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)))
    result = scene.compute_closest_points(o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32)))
    uv = result["primitive_uvs"].numpy().astype(np.float64)  # closest = (1 - u - v) a + u b + v c
    bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)
    face = result["primitive_ids"].numpy().astype(np.int64)
    closest = np.einsum("nk,nkd->nd", bary, np.asarray(mesh.triangles)[face])
    return np.linalg.norm(points - closest, axis=1), face, bary


def _labels_at(mesh: trimesh.Trimesh, labels: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Region of surface points: the label of the nearest corner of their face (largest barycentric weight)."""
    return labels[np.asarray(mesh.faces)[face, bary.argmax(axis=1)]]


def head_size(mesh: trimesh.Trimesh) -> float:
    """The unit of the relative errors: the diagonal of the mesh's axis-aligned bounding box."""
    return float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))


def region_surface_metrics(
    points: np.ndarray,  # [N, 3] head space, e.g. Gaussian centres
    mesh: trimesh.Trimesh,  # ground truth, head space
    vertex_labels: np.ndarray | None,  # [V] region label per mesh vertex, or None
    region_labels: dict[str, int],
    n_samples: int = 50000,
    seed: int = 0,
) -> dict[str, dict[str, float | int | None]]:
    """Accuracy, completeness and Chamfer of points against a surface, overall and per region.

    accuracy: mean exact distance of the points to the surface (a point belongs to the region of
    its closest surface point); completeness: mean distance of ``n_samples`` area-weighted
    surface samples to their nearest point (a sample belongs to the region of its face's nearest
    corner); chamfer: their mean. Head-space units.

    Returns:
        {"whole": {...}, region: {...} for each GEOMETRY_REGIONS named in ``region_labels`` (only
        when ``vertex_labels`` is given)}: each {"accuracy", "completeness", "chamfer", "points",
        "samples"}; a part is None when the region has no point (or no sample).
    """
    if len(points) == 0:
        raise ValueError("no points to compare with the surface")
    d_acc, face, bary = closest_surface_points(points, mesh)
    samples, sample_face = trimesh.sample.sample_surface(mesh, n_samples, seed=seed)
    d_comp, _ = cKDTree(points).query(samples)
    out = {"whole": _distances(d_acc, d_comp)}
    if vertex_labels is None:
        return out
    if len(vertex_labels) != len(mesh.vertices):
        raise ValueError(f"{len(vertex_labels)} vertex region labels for a mesh of {len(mesh.vertices)} vertices")
    acc_region = _labels_at(mesh, vertex_labels, face, bary)
    sample_bary = trimesh.triangles.points_to_barycentric(mesh.triangles[sample_face], samples)
    comp_region = _labels_at(mesh, vertex_labels, sample_face, sample_bary)
    for name in GEOMETRY_REGIONS:
        if name in region_labels:
            label = region_labels[name]
            out[name] = _distances(d_acc[acc_region == label], d_comp[comp_region == label])
    return out


def _distances(d_acc: np.ndarray, d_comp: np.ndarray) -> dict[str, float | int | None]:
    acc = float(d_acc.mean()) if len(d_acc) else None
    comp = float(d_comp.mean()) if len(d_comp) else None
    chamfer = 0.5 * (acc + comp) if acc is not None and comp is not None else None
    return {"accuracy": acc, "completeness": comp, "chamfer": chamfer, "points": int(len(d_acc)), "samples": int(len(d_comp))}


@torch.no_grad()
def posed_centres(avatar, subject, index: int, min_opacity: float = MIN_OPACITY) -> tuple[np.ndarray, int]:
    """Head-space centres [K, 3] of the avatar's Gaussians at least ``min_opacity`` opaque, posed
    by frame ``index``'s expression (the rigid head pose undone), and the number of Gaussians."""
    device = avatar.center.device
    pose = torch.tensor(subject.head_poses[index], dtype=torch.float32, device=device)
    g = avatar.frame(torch.tensor(subject.expressions[index], device=device), pose)
    head_means = (g.means - pose[:3, 3]) @ pose[:3, :3]  # R^T (x - t)
    keep = g.opacities.reshape(-1) >= min_opacity
    return head_means[keep].cpu().numpy().astype(np.float64), int(len(keep))


def region_geometry_metrics(avatar, subject, frames: list[int], min_opacity: float = MIN_OPACITY, n_samples: int = 50000) -> tuple[dict, list[dict]]:
    """Per-region geometric error of the posed avatar against the frames' ground-truth meshes.

    For each frame (one per instant: :func:`distinct_frames`): the centres of the Gaussians at
    least ``min_opacity`` opaque against the ground-truth mesh (:func:`region_surface_metrics`),
    in head-space units and as a fraction of the mesh's bounding-box diagonal (``_rel``).

    Returns:
        (summary, rows): rows, one per frame, with ``{region}_{accuracy|completeness|chamfer}[_rel]``
        ("whole" and each region); summary {"instants", "min_opacity", "head_size",
        "gaussians_kept" (mean fraction of Gaussians counted), then per region the means of its
        parts over the frames that have them and "instants"}, and "regions_unavailable" (the
        reason) when the meshes carry no per-vertex region.
    """
    rows, missing = [], None
    for i in frames:
        points, total = posed_centres(avatar, subject, i, min_opacity)
        mesh = trimesh.load(subject.mesh_paths[i], process=False)
        labels = vertex_regions(subject.mesh_paths[i])
        if labels is None:
            missing = f"{subject.mesh_paths[i]}: no per-vertex '{VERTEX_REGION_PROPERTY}' property (docs/metrics.md)"
        size = head_size(mesh)
        row = {"frame": int(i), "sequence": subject.sequences[i], "timestep": int(subject.timesteps[i]),
               "expression": dominant_expression(subject.expressions[i], subject.expression_labels),
               "head_size": size, "gaussians": total, "kept": len(points) / max(total, 1)}  # fmt: skip
        if not len(points):  # no Gaussian opaque enough: nothing to measure, not an error of 0
            measured = {region: dict.fromkeys(_PARTS) for region in ("whole", *GEOMETRY_REGIONS)}
        else:
            measured = region_surface_metrics(points, mesh, labels, subject.region_labels, n_samples)
        for region, parts in measured.items():
            for k in _PARTS:
                row[f"{region}_{k}"] = parts[k]
                row[f"{region}_{k}_rel"] = None if parts[k] is None else parts[k] / size
        rows.append(row)
    return _summarise_regions(rows, min_opacity, missing), rows


def _summarise_regions(rows: list[dict], min_opacity: float, missing: str | None) -> dict:
    out: dict = {"instants": len(rows), "min_opacity": float(min_opacity)}
    if not rows:
        return out
    out["head_size"] = float(np.mean([r["head_size"] for r in rows]))
    out["gaussians_kept"] = float(np.mean([r["kept"] for r in rows]))
    for region in ("whole", *GEOMETRY_REGIONS):
        keys = [f"{region}_{k}{s}" for k in _PARTS for s in ("", "_rel")]
        if not any(k in r for r in rows for k in keys):
            continue
        block = {}
        for key in keys:
            values = [r[key] for r in rows if r.get(key) is not None]
            block[key[len(region) + 1 :]] = float(np.mean(values)) if values else None
        block["instants"] = sum(r.get(f"{region}_chamfer") is not None for r in rows)
        out[region] = block
    if missing:
        out["regions_unavailable"] = missing
    return out
