"""Tracking refinement: residuals of each training instant's head pose and code, through the renderer."""

import numpy as np
import pytest
import torch

from eavatar.avatar.pose_fit import fit_head_pose, fitted_pose
from eavatar.avatar.refinement import RefinementConfig, TrackingRefinement, pose_correction, rotation_degrees, training_instants
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.data.subject import load_subject
from eavatar.render import Camera
from eavatar.render.camera import look_at_c2w
from tests.avatar.conftest import make_avatar


def test_pose_correction_is_the_identity_at_zero_and_rotates_about_the_centre():
    center, radius = torch.tensor([0.1, -0.2, 0.3]), torch.tensor(0.5)
    torch.testing.assert_close(pose_correction(torch.zeros(6), center, radius), torch.eye(4))
    spin = pose_correction(torch.tensor([0.0, 0.3, 0.0, 0.0, 0.0, 0.0]), center, radius)
    torch.testing.assert_close(spin @ torch.cat([center, torch.ones(1)]), torch.cat([center, torch.ones(1)]))  # the centre stays
    assert float(rotation_degrees(torch.tensor([0.0, 0.3, 0.0, 0, 0, 0]))) == pytest.approx(np.degrees(0.3))
    shift = pose_correction(torch.tensor([0.0, 0.0, 0.0, 0.1, 0.0, -0.2]), center, radius)
    torch.testing.assert_close(shift[:3, 3], torch.tensor([0.05, 0.0, -0.1]))  # translation in head radii
    batch = pose_correction(torch.randn(3, 6) * 0.1, center, radius)
    R = batch[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    tiny = SyntheticConfig(resolution=24, n_cameras=2, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("refine") / "subject", tiny))


def test_instants_are_shared_by_the_cameras_of_a_training_timestep(subject):
    instants, frame_instant = training_instants(subject)
    train = subject.split("train")
    assert len(instants) == len({(subject.sequences[i], int(subject.timesteps[i])) for i in train}) == 6
    for i in range(subject.num_frames):
        if i in train:
            assert instants[frame_instant[i]] == (subject.sequences[i], int(subject.timesteps[i]))
        else:
            assert frame_instant[i] == -1  # test frames are never refined
    cams = {}
    for i in train:
        cams.setdefault(frame_instant[i], set()).add(int(subject.camera_indices[i]))
    assert all(len(c) == 2 for c in cams.values())


def test_residuals_start_at_zero_and_leave_the_tracked_controls_as_they_are(subject):
    ref = TrackingRefinement.for_subject(RefinementConfig(enabled=True), subject)
    assert ref.pose.abs().sum() == 0 and ref.expression.abs().sum() == 0
    i = int(subject.split("train")[3])
    k = ref.instant_of(i)
    code, pose = torch.as_tensor(subject.expressions[i]), torch.as_tensor(subject.head_poses[i])
    new_code, new_pose = ref.refine(k, code, pose, torch.zeros(3), torch.tensor(1.0))
    torch.testing.assert_close(new_code, code)
    torch.testing.assert_close(new_pose, pose)
    assert ref.instant_of(int(subject.split("test")[0])) == -1


def test_priors_penalise_size_and_the_second_difference_inside_a_sequence(subject):
    cfg = RefinementConfig(enabled=True, expression=True, pose_size_weight=1.0, expression_size_weight=1.0, pose_smooth_weight=1.0, expression_smooth_weight=1.0)
    ref = TrackingRefinement.for_subject(cfg, subject)
    center, radius = torch.zeros(3), torch.tensor(1.0)
    assert float(ref.prior_loss(1, center, radius)["refine_size"].detach()) == 0
    assert ref.has_neighbours == [False, True, False, False, True, False]  # two sequences of three instants
    assert "refine_smooth" not in ref.prior_loss(0, center, radius)  # a sequence's end has no second difference
    with torch.no_grad():  # refined codes on a straight line through instants 0, 1, 2: no second difference
        ref.expression[:3] = torch.linspace(0, 1, 3)[:, None] - ref.tracked_expression[:3]
        ref.tracked_pose[:3] = torch.eye(4)
    losses = ref.prior_loss(1, center, radius)
    assert float(losses["refine_smooth"].detach()) == pytest.approx(0.0, abs=1e-10)
    assert float(losses["refine_size"].detach()) > 0
    with torch.no_grad():
        ref.pose[1, 4] = 0.1  # the middle instant off the line
    assert float(ref.prior_loss(1, center, radius)["refine_smooth"].detach()) == pytest.approx(0.1**2, rel=1e-4)  # its translation, 0.1 head radii off the midpoint
    ref.prior_loss(1, center, radius)["refine_size"].backward()
    assert ref.expression.grad[1].abs().sum() > 0 and ref.expression.grad[[0, 2, 3, 4, 5]].abs().sum() == 0


def cameras(n: int = 2) -> list[Camera]:
    return [Camera.from_c2w_opengl(look_at_c2w(torch.tensor([0.3 * s, 0.0, 0.5]), torch.zeros(3)), 60.0, 60.0, 24.0, 24.0, 48, 48) for s in (-1, 1)[:n]]


def frozen_avatar():
    """A small random avatar squashed to an ellipsoid (a sphere's rotation about its centre would be
    invisible), with a generator whose codes visibly move the Gaussians."""
    avatar = make_avatar(n=400, d_exp=5)
    with torch.no_grad():
        avatar.canonical.params["means"].mul_(torch.tensor([1.2, 0.6, 0.3]))
        for p in avatar.generator.parameters():
            p.mul_(4)
    return avatar.requires_grad_(False)


@pytest.mark.parametrize("perturbed", ["pose", "expression"])
def test_refinement_through_the_renderer_moves_noisy_controls_back_to_the_truth(perturbed):
    """The small synthetic recovery check: a frozen avatar's renders at true codes and poses, the
    head poses (or the codes) perturbed per instant, the same for both cameras; optimising only the
    residuals through the rasteriser brings the error below half of what the noise added."""
    torch.manual_seed(0)
    avatar, bg, cams, T = frozen_avatar(), torch.ones(3), cameras(), 3
    true_codes, true_poses = torch.rand(T, 5), torch.eye(4).repeat(T, 1, 1)
    targets = [[avatar.render(c, true_codes[k], true_poses[k], bg).rgb for c in cams] for k in range(T)]
    gen = torch.Generator().manual_seed(1)
    noisy_codes, noisy_poses = true_codes.clone(), true_poses.clone()
    if perturbed == "expression":
        noisy_codes += 0.1 * torch.randn(T, 5, generator=gen)
    else:
        noise = 0.015 * torch.randn(T, 6, generator=gen)  # a tracker's size: ~1.5 degrees, 1.5% of the head radius
        noisy_poses = torch.stack([true_poses[k] @ pose_correction(noise[k], avatar.center, avatar.radius) for k in range(T)])
    ref = TrackingRefinement(RefinementConfig(enabled=True, expression=True, pose_size_weight=0.0, expression_size_weight=0.0), [("s", t) for t in range(T)], np.arange(T), noisy_codes, noisy_poses)

    def error():
        with torch.no_grad():
            codes, poses = ref.refined(torch.arange(T), avatar.center, avatar.radius)
        return float((codes - true_codes).abs().mean()) if perturbed == "expression" else float((poses[:, :3] - true_poses[:, :3]).abs().mean())

    before = error()
    optimizer = torch.optim.Adam([ref.pose if perturbed == "pose" else ref.expression], lr=3e-3 if perturbed == "pose" else 1e-2)
    for step in range(25 * T):
        k = step % T
        for cam, target in zip(cams, targets[k]):
            code, pose = ref.refine(k, noisy_codes[k], noisy_poses[k], avatar.center, avatar.radius)
            loss = (avatar.render(cam, code, pose, bg).rgb - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = error()
    assert after < 0.5 * before, (before, after)


def test_fitting_a_frozen_avatar_recovers_the_head_pose_and_only_the_pose():
    """Protocol (b): a frame rendered at the true pose, scored from a tracked pose 1.3 degrees off:
    the fit brings the pose back; the avatar and the code get no gradient."""
    torch.manual_seed(0)
    avatar, bg = frozen_avatar(), torch.ones(3)
    (cam,) = cameras(1)
    code, truth = torch.rand(5), torch.eye(4)
    target = avatar.render(cam, code, truth, bg).rgb
    off = torch.tensor([0.0, 0.02, 0.01, 0.015, 0.0, 0.0])
    tracked = truth @ pose_correction(off, avatar.center, avatar.radius)
    before = {k: v.clone() for k, v in avatar.state_dict().items()}
    code_before = code.clone()
    residual = fit_head_pose(avatar, cam, code, tracked, target, bg, steps=40, lr=3e-3)
    pose = fitted_pose(avatar, tracked, residual)
    assert (pose[:3] - truth[:3]).abs().mean() < 0.5 * (tracked[:3] - truth[:3]).abs().mean()
    torch.testing.assert_close(code, code_before)
    for k, v in avatar.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)
    assert torch.equal(fit_head_pose(avatar, cam, code, tracked, target, bg, steps=0, lr=1e-3), torch.zeros(6))
