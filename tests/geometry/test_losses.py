import pytest
import torch
import trimesh

from eavatar.geometry.losses import SurfacePrior, cosine_anneal, laplacian_loss, mesh_prior_loss, offset_loss, silhouette_loss


def ico(radius=1.0, level=2):
    m = trimesh.creation.icosphere(subdivisions=level, radius=radius)
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long), m


def test_mesh_prior_loss_is_zero_for_identical_mesh_and_measures_shift_and_scale():
    v, _, _ = ico()
    assert float(mesh_prior_loss(v, v.clone())) == pytest.approx(0.0, abs=1e-12)
    shift = torch.tensor([0.3, 0.0, -0.4])
    assert float(mesh_prior_loss(v + shift, v)) == pytest.approx(0.25, rel=1e-5)  # |c| ^ 2
    s = (v - v.mean(0)).norm(dim=-1).mean()
    assert float(mesh_prior_loss(1.5 * v, v)) == pytest.approx(float((0.5 * s) ** 2), rel=1e-4)


def test_surface_prior_zero_on_itself_and_grows_with_distance():
    _, _, m = ico()
    pts, fid = trimesh.sample.sample_surface(m, 2000, seed=0)
    p, n = torch.tensor(pts, dtype=torch.float32), torch.tensor(m.face_normals[fid], dtype=torch.float32)
    term = SurfacePrior(p, n, normal_weight=0.1)
    assert float(term(p, n)) == pytest.approx(0.0, abs=1e-6)
    assert float(term(1.1 * p, n)) == pytest.approx(2 * 0.1**2, rel=0.1)  # squared Chamfer both ways
    p_grad = (1.1 * p).requires_grad_()
    term(p_grad, n).backward()
    assert float((p_grad.grad * p).sum()) > 0  # descent pulls the bigger sphere inward


def test_silhouette_loss_bounds():
    m = torch.zeros(8, 8)
    m[2:6, 2:6] = 1
    assert float(silhouette_loss(m, m)) == pytest.approx(0.0)
    assert float(silhouette_loss(1 - m, m)) == pytest.approx(1.0)


def test_laplacian_loss_penalises_noise_and_scales_quadratically():
    v, f, _ = ico(level=3)
    smooth = float(laplacian_loss(v, f))
    assert float(laplacian_loss(2 * v, f)) == pytest.approx(4 * smooth, rel=1e-5)
    noisy = v + 0.02 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0))
    assert float(laplacian_loss(noisy, f)) > 2 * smooth


def test_offset_and_anneal():
    assert float(offset_loss(torch.ones(4, 3), torch.zeros(4, 3))) == pytest.approx(3.0)
    assert cosine_anneal(0, 100) == 1.0 and cosine_anneal(50, 100) == pytest.approx(0.5) and cosine_anneal(150, 100) == 0.0
