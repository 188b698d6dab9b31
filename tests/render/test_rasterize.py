"""The cpu and reference backends against a per-pixel brute-force compositor and finite differences, and against gsplat on CUDA."""

import math
import sys

import pytest
import torch

from eavatar.render import rasterize, use_backend
from eavatar.render.projection import project
from tests.render.conftest import front_camera, random_scene


def brute_force(s: dict, cam, background: torch.Tensor, eps2d: float = 0.3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Independent reference, one pixel at a time: sort by depth, blend until transmittance would hit 1e-4.

    A Gaussian reaches the pixels whose centres lie in its 3-sigma box.
    """
    p = project(s["means"], s["quats"], s["scales"], cam.viewmat, cam.K, cam.width, cam.height, eps2d)
    order = torch.argsort(p.depths).tolist()
    rgb = torch.zeros(cam.height, cam.width, 3, dtype=s["means"].dtype)
    alpha = torch.zeros(cam.height, cam.width, 1, dtype=s["means"].dtype)
    depth = torch.zeros(cam.height, cam.width, 1, dtype=s["means"].dtype)
    for y in range(cam.height):
        for x in range(cam.width):
            T, c, d = 1.0, torch.zeros(3, dtype=rgb.dtype), 0.0
            for g in order:
                r = int(p.radii[g])
                if r == 0:
                    continue
                mx, my = p.means2d[0, g].tolist()
                if abs(x + 0.5 - mx) > r or abs(y + 0.5 - my) > r:  # outside its 3-sigma box
                    continue
                dx, dy = x + 0.5 - mx, y + 0.5 - my
                a_, b_, c_ = p.conics[g].tolist()
                sigma = 0.5 * (a_ * dx * dx + c_ * dy * dy) + b_ * dx * dy
                a = min(0.999, float(s["opacities"][g]) * math.exp(-sigma))
                if sigma < 0 or a < 1 / 255:
                    continue
                if T * (1 - a) <= 1e-4:
                    break
                c += T * a * s["colors"][g]
                d += T * a * float(p.depths[g])
                T *= 1 - a
            rgb[y, x] = c + T * background
            alpha[y, x] = 1 - T
            depth[y, x] = d / max(1 - T, 1e-10)
    return rgb, alpha, depth


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("n, seed, eps2d", [(40, 0, 0.3), (120, 3, 0.3), (120, 3, 0.1)])
def test_matches_brute_force(n, seed, eps2d, backend):
    s = random_scene(n, seed)
    s["opacities"][: n // 4] = 0.995  # opaque ones exercise the 0.999 clamp and the early stop
    cam = front_camera(40, 35)  # not a multiple of the tile size
    bg = torch.tensor([0.2, 0.5, 1.0])
    out = rasterize(**s, camera=cam, background=bg, backend=backend, eps2d=eps2d)
    rgb, alpha, depth = brute_force(s, cam, bg, eps2d)
    torch.testing.assert_close(out.rgb, rgb, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.alpha, alpha, rtol=1e-4, atol=1e-5)
    covered = alpha[..., 0] > 0.05
    torch.testing.assert_close(out.depth[covered], depth[covered], rtol=1e-4, atol=1e-5)
    assert covered.float().mean() > 0.1  # the scene is not trivially empty


def test_a_smaller_pixel_filter_renders_sharper():
    s = random_scene(60, seed=5)
    s["scales"] = s["scales"] * 0.05  # sub-pixel Gaussians: their footprint is the filter's
    cam = front_camera(40, 35)
    wide = rasterize(**s, camera=cam, eps2d=0.3, backend="cpu")
    narrow = rasterize(**s, camera=cam, eps2d=0.1, backend="cpu")
    assert narrow.alpha.sum() < 0.6 * wide.alpha.sum()  # each splat covers about a third of the area


def test_empty_scene_is_background():
    s = random_scene(10)
    s["means"][:, 2] += 5.0  # all behind the camera
    out = rasterize(**s, camera=front_camera(), background=torch.tensor([0.1, 0.2, 0.3]))
    assert (out.radii == 0).all()
    torch.testing.assert_close(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(32, 40, 3))


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gradients_match_finite_differences(backend):
    s = random_scene(6, seed=5, dtype=torch.float64, spread=0.03)
    s["scales"] = s["scales"] + 0.01  # large, soft Gaussians: far from the 1/255 and 0.999 thresholds
    s["opacities"] = s["opacities"] * 0.5
    cam = front_camera(16, 16, dtype=torch.float64)
    names = list(s)
    weights = torch.rand(16, 16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(*tensors):
        out = rasterize(**dict(zip(names, tensors)), camera=cam, background=torch.ones(3, dtype=torch.float64), backend=backend)
        return (out.rgb * weights).sum(), out.alpha.sum()

    inputs = tuple(s[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_screen_space_gradient_is_kept_for_densification(scene):
    means = scene["means"].clone().requires_grad_(True)
    out = rasterize(**{**scene, "means": means}, camera=front_camera())
    out.rgb.sum().backward()
    assert out.means2d.shape == (1, 60, 2) and out.radii.shape == (1, 60)
    grad = out.means2d.grad[0]
    assert grad.abs().sum() > 0
    assert (grad[out.radii[0] == 0] == 0).all()


def test_sh_colours_of_degree_zero_equal_rgb(scene):
    from eavatar.render.projection import SH_C0

    sh = ((scene["colors"] - 0.5) / SH_C0)[:, None, :]
    rgb = rasterize(**scene, camera=front_camera()).rgb
    torch.testing.assert_close(rasterize(**{**scene, "colors": sh}, camera=front_camera(), sh_degree=0).rgb, rgb)


@pytest.mark.parametrize(
    "field, shape, message",
    [("means", (60, 2), "means must have shape"), ("opacities", (60, 1), "opacities must have shape"), ("colors", (60, 4), "colors must be")],
)
def test_rejects_wrong_shapes(scene, field, shape, message):
    scene[field] = torch.zeros(shape)
    with pytest.raises(ValueError, match=message):
        rasterize(**scene, camera=front_camera())


def test_the_backend_follows_the_device_unless_chosen(scene, monkeypatch):
    from eavatar.render import cuda_build, reference
    from eavatar.render.rasterize import choose_backend

    monkeypatch.setattr(cuda_build, "gsplat_kernels_available", lambda: (True, "ok"))
    assert choose_backend(torch.device("cpu")) == "cpu" and choose_backend(torch.device("cuda")) == "gsplat"
    calls = []
    monkeypatch.setattr(reference, "composite_no_grad", lambda *a: calls.append(1) or reference.composite(*a))
    default = rasterize(**scene, camera=front_camera())
    assert not calls
    with use_backend("reference"):
        assert choose_backend(torch.device("cuda")) == "reference"
        chosen = rasterize(**scene, camera=front_camera())
    assert calls == [1] and choose_backend(torch.device("cpu")) == "cpu"
    torch.testing.assert_close(chosen.rgb, default.rgb, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="backend must be one of"):
        rasterize(**scene, camera=front_camera(), backend="torch")


@pytest.fixture
def kernels(monkeypatch):
    """Set what gsplat_kernels_available answers; the fallback warning not yet given in this process."""
    from eavatar.render import cuda_build

    monkeypatch.setattr(sys.modules["eavatar.render.rasterize"], "_gsplat_fallback_warned", False)
    return lambda ok, reason="ok": monkeypatch.setattr(cuda_build, "gsplat_kernels_available", lambda: (ok, reason))


def test_cuda_without_gsplats_kernels_falls_back_to_the_reference_with_one_warning(kernels):
    from eavatar.render.rasterize import choose_backend

    kernels(False, "no nvcc found (no CUDA toolkit, no nvidia-cuda-nvcc wheel; torch is built with CUDA 13.2)")
    with pytest.warns(RuntimeWarning) as warned:
        backends = [choose_backend(torch.device("cuda")) for _ in range(3)]
    assert backends == ["reference"] * 3 and choose_backend(torch.device("cpu")) == "cpu"
    assert len(warned) == 1, [str(w.message) for w in warned]
    message = str(warned[0].message)
    assert "no nvcc found" in message and "reference" in message and "bash scripts/setup.sh" in message and "nvidia-cuda-nvcc" in message
    with use_backend("gsplat"):
        assert choose_backend(torch.device("cuda")) == "gsplat"  # chosen explicitly: no fallback


def test_cuda_with_gsplats_kernels_uses_them_without_a_warning(kernels, recwarn):
    from eavatar.render.rasterize import choose_backend

    kernels(True)
    assert choose_backend(torch.device("cuda")) == "gsplat"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_without_a_gpu_cuda_means_the_reference(monkeypatch):
    from eavatar.render import cuda_build
    from eavatar.render.rasterize import choose_backend

    monkeypatch.setattr(sys.modules["eavatar.render.rasterize"], "_gsplat_fallback_warned", True)  # warned before
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda_build.build_gsplat_kernels.cache_clear()
    try:
        assert choose_backend(torch.device("cuda")) == "reference"
    finally:
        cuda_build.build_gsplat_kernels.cache_clear()


def test_gsplat_backend_needs_cuda(scene):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        rasterize(**scene, camera=front_camera(), backend="gsplat")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat")
def test_backends_agree_on_cuda():
    s = {k: v.cuda() for k, v in random_scene(2000, seed=7).items()}
    cam = front_camera(128, 96).to("cuda")
    bg = torch.ones(3, device="cuda")
    a = rasterize(**s, camera=cam, background=bg, backend="gsplat", eps2d=0.1)  # the avatar's pixel filter
    b = rasterize(**s, camera=cam, background=bg, backend="reference", eps2d=0.1)
    c = rasterize(**{k: v.cpu() for k, v in s.items()}, camera=cam.to("cpu"), background=bg.cpu(), backend="cpu", eps2d=0.1)
    torch.testing.assert_close(c.rgb, b.rgb.cpu(), rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match="needs CPU tensors"):
        rasterize(**s, camera=cam, backend="cpu")
    # gsplat also lets a Gaussian reach the rest of its tiles, where alpha < 0.011 * opacity
    torch.testing.assert_close(a.rgb, b.rgb, rtol=0, atol=2e-2)
    torch.testing.assert_close(a.alpha, b.alpha, rtol=0, atol=2e-2)
    assert (a.rgb - b.rgb).abs().mean() < 1e-3
    torch.testing.assert_close(a.radii, b.radii)
