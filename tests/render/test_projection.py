"""Projection and SH against gsplat's pure-PyTorch reference functions (which run on CPU)."""

import pytest
import torch
from gsplat.cuda import _torch_impl as ref

from eavatar.render import Camera
from eavatar.render.projection import covariance_3d, project, sh_to_rgb
from tests.render.conftest import front_camera, random_scene


def test_covariance_matches_gsplat():
    s = random_scene(100)
    expected, _ = ref._quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    torch.testing.assert_close(covariance_3d(s["quats"], s["scales"]), expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("distance", [1.0, 0.3])  # 0.3: some Gaussians behind the near plane or off-screen
def test_projection_matches_gsplat(distance):
    s = random_scene(300, seed=1, spread=0.2)
    cam = front_camera(64, 48, distance)
    covars = covariance_3d(s["quats"], s["scales"])
    radii, means2d, depths, conics, _ = ref._fully_fused_projection(
        s["means"], covars, cam.viewmat[None], cam.K[None], cam.width, cam.height, eps2d=0.3
    )
    p = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, cam.width, cam.height)
    torch.testing.assert_close(p.radii, radii[0])
    drawn = radii[0] > 0
    assert 0 < int(drawn.sum()) < 300 or distance == 1.0
    torch.testing.assert_close(p.means2d[0][drawn], means2d[0][drawn], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(p.conics[drawn], conics[0][drawn], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(p.depths, depths[0])


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spherical_harmonics_match_gsplat(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(50, 3, generator=g)
    coeffs = torch.randn(50, 16, 3, generator=g) * 0.3
    expected = torch.clamp_min(ref._spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
    torch.testing.assert_close(sh_to_rgb(degree, dirs, coeffs), expected, rtol=1e-5, atol=1e-6)


def test_sh_rejects_too_few_coefficients():
    with pytest.raises(ValueError, match="sh_degree 2 needs 9"):
        sh_to_rgb(2, torch.randn(3, 3), torch.randn(3, 4, 3))


def test_camera_from_opengl_c2w_puts_the_origin_at_the_principal_point():
    cam = front_camera(64, 48, 2.0)
    p = project(torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.01), cam.viewmat, cam.K, 64, 48)
    torch.testing.assert_close(p.means2d[0, 0], cam.K[:2, 2])
    assert p.depths.item() == pytest.approx(2.0)
    torch.testing.assert_close(cam.camera_center, torch.tensor([0.0, 0.0, 2.0]))
    # +y in the world (OpenGL up) is up in the image: smaller row index
    up = project(torch.tensor([[0.0, 0.1, 0.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.01), cam.viewmat, cam.K, 64, 48)
    assert up.means2d[0, 0, 1] < cam.K[1, 2]


def test_camera_rejects_bad_shapes():
    with pytest.raises(ValueError, match="viewmat must be"):
        Camera(torch.eye(3), torch.eye(3), 4, 4)
