import numpy as np
import pytest
import torch

from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.model import AvatarConfig, HeadAvatar


def make_avatar(n: int = 200, d_exp: int = 5, seed: int = 0) -> HeadAvatar:
    """A small random avatar: points on a 0.1-radius sphere, generator heads perturbed from zero."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3))
    pts = 0.1 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    cfg = AvatarConfig(init=GaussianInitConfig(feature_dim=8), generator=GeneratorConfig(hidden_dim=32, num_layers=2, pos_frequencies=2))
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_points(pts.astype(np.float32), cfg.init), d_exp, cfg)
    with torch.no_grad():  # non-zero heads, so expression changes really move things in tests
        for p in avatar.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return avatar


@pytest.fixture
def avatar() -> HeadAvatar:
    return make_avatar()
