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


def test_deformation_split_keeps_the_image_and_optimizer_in_step():
    from eavatar.avatar.densify import split_in_place

    avatar = make_avatar(n=300)
    with torch.no_grad():  # anisotropic Gaussians, so "longest axis" matters
        avatar.canonical.params["scales"][:, 0] += 0.7
    params = avatar.canonical.params
    optimizers = {k: torch.optim.Adam([params[k]], lr=1e-3) for k in PARAM_NAMES}
    cam, code = front_camera(64), torch.zeros(5)
    avatar.render(cam, code, torch.eye(4), torch.ones(3)).rgb.sum().backward()
    for opt in optimizers.values():
        opt.step()
    before = avatar.render(cam, code, torch.eye(4), torch.ones(3)).rgb.detach()
    mask = torch.zeros(300, dtype=torch.bool)
    mask[::3] = True
    state = {"exp_max": torch.rand(300)}
    split_in_place(params, optimizers, state, mask)
    assert len(avatar.canonical) == 400 and state["exp_max"].shape == (400,)
    for name in PARAM_NAMES:
        assert optimizers[name].state[params[name]]["exp_avg"].shape == params[name].shape
    after = avatar.render(cam, code, torch.eye(4), torch.ones(3)).rgb.detach()
    diff = (after - before).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.15, (diff.mean(), diff.max())


def test_densifier_splits_moving_gaussians_on_schedule_within_the_cap():
    avatar = make_avatar(n=200)
    cfg = DensifyConfig(grow_grad2d=1e9, refine_start=0, refine_every=2, refine_stop=100, reset_every=10_000, max_gaussians=230, deformation_split=True, tau_split=0.5)
    densifier = Densifier(cfg, float(avatar.radius))
    params = avatar.canonical.params
    optimizers = {k: torch.optim.Adam([params[k]], lr=1e-4) for k in PARAM_NAMES}
    cam = front_camera(32)
    magnitude = torch.zeros(200)
    magnitude[:50] = 1.0  # 50 Gaussians move more than tau_split
    for step in (1, 2):
        out = rasterize(*(lambda g: (g.means, g.quats, g.scales, g.opacities, g.colors))(avatar.frame(torch.zeros(5), torch.eye(4))), cam)
        out.rgb.sum().backward()
        densifier.step(params, optimizers, step, out, magnitude if step == 1 else torch.zeros(len(params["means"])))
    assert densifier.last_splits == 30  # capped: a split adds one, 200 + 30 = 230
    assert len(avatar.canonical) == 230
