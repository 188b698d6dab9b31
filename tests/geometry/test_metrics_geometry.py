import numpy as np
import pytest
import torch
import trimesh

from eavatar.metrics.geometry import dominant_expression, gaussian_points, mesh_metrics, point_metrics


def test_chamfer_of_concentric_spheres_is_their_gap_and_normals_agree():
    a = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    b = trimesh.creation.icosphere(subdivisions=4, radius=1.1)
    same = mesh_metrics(a, a, n=20000)
    gap = mesh_metrics(a, b, n=20000)
    assert same["chamfer"] < 0.015  # the sampling floor: about half the sample spacing
    assert gap["chamfer"] == pytest.approx(0.1, abs=0.015)
    assert gap["normal_consistency"] > 0.99


def test_normal_consistency_drops_for_wrong_normals():
    pts = np.random.default_rng(0).normal(size=(500, 3))
    up = np.tile([0.0, 0.0, 1.0], (500, 1))
    side = np.tile([1.0, 0.0, 0.0], (500, 1))
    assert point_metrics(pts, up, pts, up)["normal_consistency"] == pytest.approx(1.0)
    assert point_metrics(pts, side, pts, up)["normal_consistency"] == pytest.approx(0.0, abs=1e-9)


def test_gaussian_normal_is_the_shortest_axis():
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0], [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]])  # identity; 90 deg about x
    scales = torch.tensor([[1.0, 1.0, 0.01], [1.0, 1.0, 0.01]])
    _, normals = gaussian_points(torch.zeros(2, 3), quats, scales)
    np.testing.assert_allclose(np.abs(normals), [[0, 0, 1], [0, 1, 0]], atol=1e-6)  # local z, then z rotated onto -y


def test_dominant_expression():
    labels = ["jaw_open", "smile"]
    assert dominant_expression(np.array([0.1, 0.05]), labels) == "neutral"
    assert dominant_expression(np.array([0.3, 0.7]), labels) == "smile"
