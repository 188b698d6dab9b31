import pytest
import torch

from eavatar.render import Camera


def random_scene(n: int, seed: int = 0, dtype=torch.float32, spread: float = 0.08) -> dict:
    """N random Gaussians around the origin, sized for a 1-unit-away camera."""
    g = torch.Generator().manual_seed(seed)
    return {
        "means": (torch.randn(n, 3, generator=g) * spread).to(dtype),
        "quats": torch.randn(n, 4, generator=g).to(dtype),
        "scales": (torch.rand(n, 3, generator=g) * 0.02 + 0.004).to(dtype),
        "opacities": (torch.rand(n, generator=g) * 0.8 + 0.1).to(dtype),
        "colors": torch.rand(n, 3, generator=g).to(dtype),
    }


def front_camera(width: int = 40, height: int = 32, distance: float = 1.0, dtype=torch.float32) -> Camera:
    """Looks at the origin from +z (OpenGL c2w), slightly off-centre principal point."""
    c2w = torch.eye(4, dtype=dtype)
    c2w[2, 3] = distance
    cam = Camera.from_c2w_opengl(c2w, 1.3 * width, 1.3 * width, 0.5 * width + 0.7, 0.5 * height - 0.4, width, height)
    return Camera(cam.viewmat.to(dtype), cam.K.to(dtype), cam.width, cam.height)


@pytest.fixture
def scene():
    return random_scene(60)
