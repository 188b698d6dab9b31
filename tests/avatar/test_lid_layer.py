"""The lid layer: found on the eyes from the region maps, placed in front of them, transparent at the start."""

from dataclasses import replace

import numpy as np
import plyfile
import pytest
import torch
from scipy.spatial import cKDTree

from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig, load_mesh, sample_mesh_points
from eavatar.avatar.lid_layer import add_lid_layer, eye_points, surface_normals
from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    cfg = SyntheticConfig(resolution=64, n_cameras=3, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=8, mesh_subdivisions=4)
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("lid") / "s", cfg))


@pytest.fixture(scope="module")
def seeds(subject):
    mesh = load_mesh(subject.template_mesh)
    points = sample_mesh_points(mesh, 4000, seed=0).astype(np.float64)
    return points, surface_normals(mesh, points)


def template_regions(subject, points: np.ndarray) -> np.ndarray:
    """Region label of the template vertex nearest to each point: the 3D truth the 2D maps are tested against."""
    vertex = plyfile.PlyData.read(str(subject.template_mesh))["vertex"].data
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1)
    _, nearest = cKDTree(xyz).query(points)
    return np.asarray(vertex["region"])[nearest]


def test_eye_points_are_the_eyes(subject, seeds):
    points, normals = seeds
    eyes = eye_points(points, normals, subject)
    truth = template_regions(subject, points) == subject.region_labels["eyes"]
    assert eyes.sum() >= 10
    assert (truth[eyes]).mean() > 0.8  # what the maps call eyes is eyes on the surface
    assert eyes[truth].mean() > 0.5  # and most of the eye surface is found
    assert (points[eyes, 2] > 0).all()  # the face looks towards +z: nothing from the back of the head


def test_eye_points_need_region_maps(subject, seeds):
    points, normals = seeds
    no_eyes = replace(subject, region_labels={k: v for k, v in subject.region_labels.items() if k != "eyes"})
    assert not eye_points(points, normals, no_eyes).any()
    no_maps = replace(subject, region_paths=[None] * subject.num_frames)
    assert not eye_points(points, normals, no_maps).any()


def test_normals_point_out_of_the_head(seeds):
    points, normals = seeds
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    centre = points.mean(0)
    assert (np.einsum("ij,ij->i", points - centre, normals) > 0).mean() > 0.9


def test_add_lid_layer_puts_transparent_copies_in_front(seeds):
    points, normals = seeds
    cfg = GaussianInitConfig(feature_dim=8)
    canonical = CanonicalGaussians.from_points(points.astype(np.float32), cfg)
    before = {k: v.detach().clone() for k, v in canonical.params.items()}
    eyes = np.zeros(len(points), dtype=bool)
    eyes[[3, 10, 500]] = True
    assert add_lid_layer(canonical, normals, eyes, cfg, radius=0.1) == 3
    params = canonical.params
    assert len(canonical) == len(points) + 3
    for name, value in before.items():  # the seeds themselves are untouched
        assert torch.equal(params[name][: len(points)], value)
        assert isinstance(params[name], torch.nn.Parameter) and params[name].requires_grad
    moved = params["means"][len(points) :].detach().double().numpy() - points[eyes]
    np.testing.assert_allclose(moved, cfg.lid_offset * 0.1 * normals[eyes], atol=1e-6)
    np.testing.assert_allclose(torch.sigmoid(params["opacities"][len(points) :]).detach().numpy(), cfg.lid_opacity, rtol=1e-5)
    assert torch.equal(params["scales"][len(points) :], before["scales"][torch.as_tensor(eyes)])
    assert not torch.allclose(params["features"][len(points) :], before["features"][torch.as_tensor(eyes)])  # features of their own
    assert add_lid_layer(canonical, normals[:0], np.zeros(0, dtype=bool), cfg, radius=0.1) == 0
