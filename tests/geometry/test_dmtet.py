import math

import pytest
import torch
import trimesh

from eavatar.geometry.dmtet import TRIANGLE_TABLE, cube_tet_grid, marching_tets


def sphere(resolution=24, radius=0.6):
    grid = cube_tet_grid(resolution, torch.zeros(3), 1.0)
    return grid, grid.vertices.norm(dim=-1) - radius


def test_grid_tets_tile_the_box_without_overlap():
    grid = cube_tet_grid(3, torch.tensor([1.0, 2.0, 3.0]), 0.5)
    p = grid.vertices[grid.tets]  # [T, 4, 3]
    vol = torch.det(p[:, 1:] - p[:, :1]).abs().sum() / 6
    assert torch.isclose(vol, torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(grid.vertices.mean(0), torch.tensor([1.0, 2.0, 3.0]), atol=1e-6)


def test_triangle_table_counts():
    for case in range(16):
        inside = bin(case).count("1")
        expected = {0: 0, 1: 1, 2: 2, 3: 1, 4: 0}[inside]
        assert int((TRIANGLE_TABLE[case, :, 0] >= 0).sum()) == expected


@pytest.mark.parametrize("radius", [0.3, 0.6])
def test_sphere_sdf_gives_right_radius_closed_outward_mesh(radius):
    grid, sdf = sphere(radius=radius)
    v, f = marching_tets(grid.vertices, grid.tets, sdf)
    r = v.norm(dim=-1)
    assert abs(float(r.mean()) - radius) < 0.01 * radius
    assert float((r - radius).abs().max()) < 0.1 * grid.cell
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=True)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.05)  # positive: normals point outward


def test_vertices_follow_the_sdf_differentiably():
    """Shifting a true distance field by +d moves the surface inward by d: d(mean radius)/dd = -1."""
    grid, sdf = sphere()
    shift = torch.zeros((), requires_grad=True)
    v, _ = marching_tets(grid.vertices, grid.tets, sdf + shift)
    v.norm(dim=-1).mean().backward()
    assert float(shift.grad) == pytest.approx(-1.0, abs=0.05)


def test_empty_when_no_crossing():
    grid, sdf = sphere()
    v, f = marching_tets(grid.vertices, grid.tets, sdf.abs() + 0.1)
    assert v.shape == (0, 3) and f.shape == (0, 3)
