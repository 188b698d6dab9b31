"""The cpu backend's compiled loops and the reference's fast paths (radix pixel sort, CSR blending) against the autograd reference."""

import pytest
import torch

from eavatar.render import reference
from eavatar.render.projection import project
from tests.render.conftest import front_camera, random_scene


@pytest.mark.parametrize("num_pixels", [1000, 65536, 300 * 260])  # one 16-bit digit, exactly 2^16, two digits
def test_radix_order_is_torchs_stable_argsort(num_pixels):
    g = torch.Generator().manual_seed(num_pixels)
    pixel = torch.randint(0, num_pixels, (50_000,), generator=g)
    pixel[:100] = num_pixels - 1  # the largest id, many times
    torch.testing.assert_close(reference.stable_pixel_order(pixel, num_pixels), torch.argsort(pixel, stable=True), rtol=0, atol=0)


@pytest.mark.parametrize("width, height", [(40, 32), (300, 260)])
def test_no_grad_composite_equals_the_reference(width, height):
    s = random_scene(300, seed=5)
    cam = front_camera(width, height)
    proj = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, width, height)
    features = torch.cat([s["colors"], proj.depths[:, None]], -1)
    acc, alpha = reference.composite(proj, s["opacities"], features, width, height)
    fast_acc, fast_alpha = reference.composite_no_grad(proj, s["opacities"], features, width, height)
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
    acc, alpha = reference.composite(proj, s["opacities"], features, width, height)
    fast_acc, fast_alpha = composite_numba(proj, s["opacities"], features, width, height)
    assert alpha.min() < 0.5 < alpha.max() > 0.99  # edges and opaque interior
    torch.testing.assert_close(fast_acc, acc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_alpha, alpha, rtol=1e-4, atol=1e-5)


def _reference_and_compiled(n: int, width: int, height: int, seed: int, opacity_scale: float = 1.0):
    """Both composites of one scene, with gradients of one random loss on colour, depth and alpha."""
    from eavatar.render.cpu_numba import composite_numba

    results = []
    for fn in (reference.composite, composite_numba):
        s = random_scene(n, seed=seed)
        leaves = {k: s[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "colors")}
        cam = front_camera(width, height)
        proj = project(leaves["means"], leaves["quats"], leaves["scales"], cam.viewmat, cam.K, width, height)
        proj.means2d.retain_grad()
        opacities = (leaves["opacities"] * opacity_scale).clamp(max=1.0)
        acc, alpha = fn(proj, opacities, torch.cat([leaves["colors"], proj.depths[:, None]], -1), width, height)
        g = torch.Generator().manual_seed(99)
        weights = torch.randn(height, width, 5, generator=g)
        ((acc * weights[..., :4]).sum() + (alpha[..., 0] * weights[..., 4]).sum()).backward()
        results.append((acc.detach(), alpha.detach(), proj.means2d.grad[0], {k: v.grad for k, v in leaves.items()}))
    return results


@pytest.mark.parametrize("n, width, height, opacity_scale", [(300, 40, 32, 1.0), (2000, 96, 80, 1.0), (400, 48, 40, 3.0)])
def test_compiled_training_path_equals_the_reference_in_values_and_gradients(n, width, height, opacity_scale):
    """opacity_scale 3 saturates many alphas at the 0.999 cap and ends pixels early (transmittance < 1e-4)."""
    (acc, alpha, g2d, grads), (fast_acc, fast_alpha, fast_g2d, fast_grads) = _reference_and_compiled(n, width, height, n, opacity_scale)
    assert alpha.min() < 0.5 < alpha.max() > 0.99
    torch.testing.assert_close(fast_acc, acc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast_alpha, alpha, rtol=1e-4, atol=1e-5)
    scale = g2d.abs().max()
    torch.testing.assert_close(fast_g2d, g2d, rtol=1e-3, atol=1e-4 * scale)  # what densification reads
    for name, grad in grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-3, atol=1e-4 * grad.abs().max(), msg=lambda m: f"d/d{name}: {m}")


def _projected_scene(n: int, width: int, height: int, seed: int):
    s = random_scene(n, seed=seed)
    cam = front_camera(width, height)
    proj = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, width, height)
    return proj, s["opacities"], torch.cat([s["colors"], proj.depths[:, None]], -1)


def test_training_forward_is_the_viewing_walk_bit_for_bit():
    from eavatar.render.cpu_numba import composite_numba

    proj, opacities, features = _projected_scene(2000, 96, 80, seed=4)
    view_acc, view_alpha = composite_numba(proj, opacities, features, 96, 80)
    train_acc, train_alpha = composite_numba(proj, opacities, features.clone().requires_grad_(True), 96, 80)
    assert view_alpha.max() > 0.99
    torch.testing.assert_close(train_acc.detach(), view_acc, rtol=0, atol=0)
    torch.testing.assert_close(train_alpha.detach(), view_alpha, rtol=0, atol=0)


def test_pixel_lists_survive_a_record_overflow_and_stay_in_depth_order():
    import numpy as np

    from eavatar.render.cpu_numba import _array, blend_with_lists

    width, height = 64, 48
    proj, opacities, features = _projected_scene(1500, width, height, seed=8)
    visible = torch.nonzero(proj.radii > 0).squeeze(1)
    order = visible[torch.argsort(proj.depths[visible], stable=True)].numpy()
    args = (order, _array(proj.means2d[0]), _array(proj.conics), _array(opacities), proj.radii.numpy(), _array(features), width, height)
    roomy = blend_with_lists(*args)
    cramped = blend_with_lists(*args, capacity=3)  # every band overflows: one re-run
    for a, b in zip(roomy, cramped):
        np.testing.assert_array_equal(a, b)
    acc, alpha, final_t, used, start, ids = roomy
    np.testing.assert_array_equal(np.diff(start), used)
    assert used.max() > 3 and (used == 0).any()
    rank = np.empty(len(proj.radii), np.int64)
    rank[order] = np.arange(len(order))
    for p in np.nonzero(used > 1)[0]:
        assert (np.diff(rank[ids[start[p] : start[p + 1]]]) > 0).all(), f"pixel {p}: not front to back"
    np.testing.assert_allclose(1 - final_t, alpha, atol=1e-5)  # what a pixel lets through is what it did not cover
