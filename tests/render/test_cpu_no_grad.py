"""The viewing path of the CPU backend (radix pixel sort, CSR blending) against the autograd reference."""

import pytest
import torch

from eavatar.render import cpu
from eavatar.render.projection import project
from tests.render.conftest import front_camera, random_scene


@pytest.mark.parametrize("num_pixels", [1000, 65536, 300 * 260])  # one 16-bit digit, exactly 2^16, two digits
def test_radix_order_is_torchs_stable_argsort(num_pixels):
    g = torch.Generator().manual_seed(num_pixels)
    pixel = torch.randint(0, num_pixels, (50_000,), generator=g)
    pixel[:100] = num_pixels - 1  # the largest id, many times
    torch.testing.assert_close(cpu.stable_pixel_order(pixel, num_pixels), torch.argsort(pixel, stable=True), rtol=0, atol=0)


@pytest.mark.parametrize("width, height", [(40, 32), (300, 260)])
def test_no_grad_composite_equals_the_reference(width, height):
    s = random_scene(300, seed=5)
    cam = front_camera(width, height)
    proj = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, width, height)
    features = torch.cat([s["colors"], proj.depths[:, None]], -1)
    acc, alpha = cpu.composite(proj, s["opacities"], features, width, height)
    fast_acc, fast_alpha = cpu.composite_no_grad(proj, s["opacities"], features, width, height)
    assert alpha.max() > 0.5  # the scene is really drawn
    torch.testing.assert_close(fast_acc, acc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_alpha, alpha, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n, width, height", [(300, 40, 32), (2000, 96, 80)])
def test_compiled_loop_equals_the_reference(n, width, height):
    from eavatar.render.cpu_numba import composite_numba

    s = random_scene(n, seed=n)
    cam = front_camera(width, height)
    proj = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, width, height)
    features = torch.cat([s["colors"], proj.depths[:, None]], -1)
    acc, alpha = cpu.composite(proj, s["opacities"], features, width, height)
    fast_acc, fast_alpha = composite_numba(proj, s["opacities"], features, width, height)
    assert alpha.min() < 0.5 < alpha.max() > 0.99  # edges and opaque interior
    torch.testing.assert_close(fast_acc, acc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_alpha, alpha, rtol=1e-4, atol=1e-5)
