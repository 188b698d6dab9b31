"""Densification runs gsplat's strategy on our CPU renders and respects the cap."""

import torch

from eavatar.avatar.densify import Densifier, DensifyConfig
from eavatar.avatar.gaussians import PARAM_NAMES
from eavatar.render import rasterize
from tests.avatar.conftest import make_avatar
from tests.avatar.test_model import front_camera


def train_steps(max_gaussians: int, steps: int = 3):
    avatar = make_avatar(n=300)
    cfg = DensifyConfig(grow_grad2d=1e-9, refine_start=1, refine_every=1, refine_stop=100, reset_every=10_000, max_gaussians=max_gaussians)
    densifier = Densifier(cfg, float(avatar.radius))
    params = avatar.canonical.params
    optimizers = {k: torch.optim.Adam([params[k]], lr=1e-3) for k in PARAM_NAMES}
    cam = front_camera(48)
    gt = torch.rand(48, 48, 3)
    for step in range(1, steps + 1):
        g = avatar.frame(torch.rand(5), torch.eye(4))
        out = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, cam, background=torch.ones(3))
        (out.rgb - gt).abs().mean().backward()
        for opt in optimizers.values():
            opt.step()
        densifier.step(params, optimizers, step, out)
        for opt in optimizers.values():
            opt.zero_grad()
    return avatar, optimizers


def test_growth_adds_gaussians_and_keeps_optimizer_state_in_step():
    avatar, optimizers = train_steps(max_gaussians=10_000)
    n = len(avatar.canonical)
    assert n > 300
    for name in PARAM_NAMES:
        param = avatar.canonical.params[name]
        assert param.shape[0] == n
        assert optimizers[name].state[param]["exp_avg"].shape == param.shape


def test_growth_stops_at_the_cap():
    avatar, _ = train_steps(max_gaussians=300)
    assert len(avatar.canonical) <= 300
