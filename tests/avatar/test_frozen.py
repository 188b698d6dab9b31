"""FrozenAvatar equals HeadAvatar frame by frame, and reuses only what did not change."""

import pytest
import torch

from eavatar.avatar.frozen import FrozenAvatar

from .conftest import make_avatar
from .test_model import front_camera

FIELDS = ("means", "quats", "scales", "opacities", "colors", "exp_displacement", "exp_magnitude", "is_control")


def with_control_set(avatar, select: str = "expression"):
    """tau at the median of what it compares, so half the Gaussians are control Gaussians."""
    avatar.cfg.control.select = select
    with torch.no_grad():
        compared = avatar.expression_reach() if select == "expression" else avatar.frame(torch.rand(avatar.d_exp), torch.eye(4)).exp_magnitude
        avatar.cfg.control.tau = float(compared.median())
        avatar.cfg.control.radius = 0.1
    return avatar


def turned(yaw: float) -> torch.Tensor:
    pose = torch.eye(4)
    c, s = torch.cos(torch.tensor(yaw)), torch.sin(torch.tensor(yaw))
    pose[0, 0], pose[0, 2], pose[2, 0], pose[2, 2] = c, s, -s, c
    pose[:3, 3] = torch.tensor([0.01, -0.02, 0.03])
    return pose


def assert_same_frame(a, b):
    for name in FIELDS:
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("select", ["expression", "frame"])
def test_frozen_frames_equal_the_avatar_over_a_slider_session(select):
    avatar = with_control_set(make_avatar(seed=1), select)
    frozen = FrozenAvatar(avatar)
    g = torch.Generator().manual_seed(0)
    code, pose = torch.rand(avatar.d_exp, generator=g), torch.eye(4)
    moves = []
    for step in range(12):  # one input at a time, as sliders do, and repeats
        if step % 3 == 0:
            code = code.clone()
            code[step % avatar.d_exp] = float(torch.rand(1, generator=g))
        elif step % 3 == 1:
            pose = turned(0.1 * step)
        moves.append((code, pose))
    for code, pose in moves:
        expected = avatar.frame(code, pose)
        assert int(expected.is_control.sum()) > 0
        assert_same_frame(frozen.frame(code, pose), expected)


def test_a_pose_change_reuses_the_expression_branch_and_an_expression_change_the_pose_branch():
    avatar = with_control_set(make_avatar(seed=2))
    frozen = FrozenAvatar(avatar)
    calls = {"expression": 0, "pose": 0}
    for name in calls:
        branch = getattr(avatar.generator, name)
        original = branch.from_rows

        def counted(rows, code, name=name, original=original):
            calls[name] += 1
            return original(rows, code)

        branch.from_rows = counted
    code = torch.rand(avatar.d_exp)
    frozen.frame(code, torch.eye(4))
    frozen.frame(code, turned(0.3))
    assert calls == {"expression": 1, "pose": 2}
    frozen.frame(code * 0.5, turned(0.3))
    assert calls == {"expression": 2, "pose": 2}
    frozen.frame(code * 0.5, turned(0.3))  # nothing changed: the cached frame
    assert calls == {"expression": 2, "pose": 2}


def test_frozen_sees_an_optimiser_step_and_replaced_parameters():
    avatar = with_control_set(make_avatar(seed=3))
    frozen = FrozenAvatar(avatar)
    code = torch.rand(avatar.d_exp)
    before = frozen.frame(code, torch.eye(4)).means.clone()
    optimizer = torch.optim.Adam(avatar.parameters(), lr=1e-2)
    avatar.frame(code, torch.eye(4)).means.sum().backward()
    optimizer.step()
    after = frozen.frame(code, torch.eye(4))
    assert not torch.allclose(after.means, before)
    assert_same_frame(after, avatar.frame(code, torch.eye(4)))
    params = avatar.canonical.params
    params["features"] = torch.nn.Parameter(torch.randn_like(params["features"]))  # as densification does
    assert_same_frame(frozen.frame(code, torch.eye(4)), avatar.frame(code, torch.eye(4)))


def test_frozen_render_equals_the_avatar_render_and_checks_the_code():
    avatar = with_control_set(make_avatar(seed=4))
    frozen = FrozenAvatar(avatar)
    camera, background = front_camera(), torch.ones(3)
    code = torch.rand(avatar.d_exp)
    with torch.no_grad():
        expected = avatar.render(camera, code, torch.eye(4), background).rgb
    torch.testing.assert_close(frozen.render(camera, code, torch.eye(4), background).rgb, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=f"the avatar was trained with d_exp={avatar.d_exp}"):
        frozen.frame(torch.zeros(avatar.d_exp + 1), torch.eye(4))
