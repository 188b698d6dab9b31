"""Per-region geometric error: exact distances to the surface, regions from per-vertex labels,
the posed avatar's opaque Gaussians, and a neutral shape that fails in the mouth."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from eavatar.metrics.geometry import (
    GEOMETRY_REGIONS,
    closest_surface_points,
    head_size,
    region_geometry_metrics,
    region_surface_metrics,
    vertex_regions,
)


def test_distance_to_the_surface_is_exact():
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    points = np.array([[0.0, 0.0, 1.5], [0.3, -0.2, -1.25], [0.0, 0.0, 0.9], [2.0, 2.0, 1.0]])
    dist, face, bary = closest_surface_points(points, box)
    np.testing.assert_allclose(dist, [0.5, 0.25, 0.1, np.sqrt(2.0)], atol=1e-6)
    closest = np.einsum("nk,nkd->nd", bary, box.triangles[face])
    np.testing.assert_allclose(np.linalg.norm(points - closest, axis=1), dist, atol=1e-6)


def test_vertex_regions_round_trip_through_ply(tmp_path):
    mesh = trimesh.creation.icosphere(1)
    assert vertex_regions(_export(mesh, tmp_path / "plain.ply")) is None
    mesh.vertex_attributes["region"] = (np.arange(len(mesh.vertices)) % 6).astype(np.uint8)
    np.testing.assert_array_equal(vertex_regions(_export(mesh, tmp_path / "labelled.ply")), np.arange(len(mesh.vertices)) % 6)


def test_surface_itself_scores_near_zero(head_frames, region_labels):
    f = head_frames["expressive"]
    out = region_surface_metrics(np.asarray(f.mesh.vertices), f.mesh, f.vertex_regions, region_labels, n_samples=20000)
    size = head_size(f.mesh)
    assert set(out) == {"whole", *GEOMETRY_REGIONS}
    for parts in out.values():
        assert parts["accuracy"] < 1e-6 and parts["completeness"] < 0.01 * size and parts["points"] > 0 and parts["samples"] > 0


def test_neutral_shape_fails_in_the_mouth(head_frames, region_labels):
    """The neutral mesh's vertices against the open-mouth surface: the mouth is far off, the eyes are not."""
    gt, neutral = head_frames["expressive"], head_frames["neutral"]
    perfect = region_surface_metrics(np.asarray(gt.mesh.vertices), gt.mesh, gt.vertex_regions, region_labels, n_samples=20000)
    out = region_surface_metrics(np.asarray(neutral.mesh.vertices), gt.mesh, gt.vertex_regions, region_labels, n_samples=20000)
    assert out["mouth"]["chamfer"] > 4 * max(out["eyes"]["chamfer"], out["brows"]["chamfer"])
    assert out["mouth"]["chamfer"] > 1.5 * out["skin"]["chamfer"]  # the skin moves too: the chin turns with the jaw
    assert out["mouth"]["accuracy"] > 2.5 * out["skin"]["accuracy"] and out["eyes"]["accuracy"] < 1e-6
    assert out["mouth"]["chamfer"] > 3 * perfect["mouth"]["chamfer"]  # perfect: only the completeness of a discrete vertex set
    assert out["whole"]["chamfer"] > perfect["whole"]["chamfer"]


def test_without_vertex_labels_only_the_whole(head_frames, region_labels):
    f = head_frames["neutral"]
    assert set(region_surface_metrics(np.asarray(f.mesh.vertices), f.mesh, None, region_labels, n_samples=5000)) == {"whole"}


def test_posed_avatar_opaque_gaussians_against_the_truth(head_frames, region_labels, tmp_path):
    """A stand-in avatar whose opaque Gaussians sit on the posed true surface and whose transparent
    ones float far away: the pose is undone, the transparent ones are left out, the error is ~0."""
    gt = head_frames["expressive"]
    mesh = gt.mesh.copy()
    mesh.vertex_attributes["region"] = gt.vertex_regions.astype(np.uint8)
    path = _export(mesh, tmp_path / "000.ply")
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3] = trimesh.transformations.rotation_matrix(0.4, [0.2, 1.0, 0.1])[:3, :3]
    pose[:3, 3] = [0.02, -0.01, 0.03]
    surface = torch.tensor(np.asarray(gt.mesh.vertices), dtype=torch.float32)
    floaters = torch.full((50, 3), 0.5)
    head_points = torch.cat([surface, floaters])
    opacities = torch.cat([torch.full((len(surface),), 0.9), torch.full((50,), 0.1)])

    class Avatar:
        center = torch.zeros(3)

        def frame(self, expression, head_pose):
            return SimpleNamespace(means=head_points @ head_pose[:3, :3].T + head_pose[:3, 3], opacities=opacities)

    subject = SimpleNamespace(
        head_poses=pose[None], expressions=np.zeros((1, 6), dtype=np.float32), mesh_paths=[path], sequences=["s"], timesteps=np.array([0]),
        expression_labels=[f"e{i}" for i in range(6)], region_labels=region_labels,
    )  # fmt: skip
    summary, rows = region_geometry_metrics(Avatar(), subject, [0], min_opacity=0.5)
    assert summary["instants"] == 1 and "regions_unavailable" not in summary
    assert summary["gaussians_kept"] == pytest.approx(len(surface) / (len(surface) + 50))
    assert summary["head_size"] == pytest.approx(head_size(gt.mesh))
    for region in ("whole", *GEOMETRY_REGIONS):
        assert summary[region]["accuracy"] < 1e-5 and summary[region]["completeness_rel"] < 0.01 and summary[region]["instants"] == 1
    assert rows[0]["mouth_chamfer_rel"] == pytest.approx(rows[0]["mouth_chamfer"] / rows[0]["head_size"])
    mesh.vertex_attributes.clear()
    _export(mesh, path)
    summary, _ = region_geometry_metrics(Avatar(), subject, [0])
    assert "mouth" not in summary and summary["whole"]["accuracy"] < 1e-5 and "no per-vertex 'region'" in summary["regions_unavailable"]


def _export(mesh: trimesh.Trimesh, path):
    mesh.export(path)
    return path
