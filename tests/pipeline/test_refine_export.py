"""`eavatar refine-export`: a subject whose training frames carry the refined codes and poses."""

import json

import numpy as np
import pytest
import torch

from eavatar.avatar.checkpoint import AvatarInfo, load_refinement, save_avatar
from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig, load_mesh
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.model import AvatarConfig, HeadAvatar
from eavatar.avatar.refinement import RefinementConfig, TrackingRefinement, pose_correction
from eavatar.cli.main import main
from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.errors import EAvatarError
from eavatar.pipeline.refine_export import export_refined_subject

TINY = SyntheticConfig(resolution=24, n_cameras=2, n_heldout_cameras=1, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny subject and an avatar.pt carrying random tracking residuals, as training leaves them."""
    root = tmp_path_factory.mktemp("refine_export")
    subject = load_subject(generate_synthetic_subject(root / "subject", TINY))
    cfg = AvatarConfig(init=GaussianInitConfig(num_points=300, feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2, pos_frequencies=2))
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_mesh(load_mesh(subject.template_mesh), cfg.init), subject.d_exp, cfg)
    refinement = TrackingRefinement.for_subject(RefinementConfig(enabled=True), subject)
    torch.manual_seed(0)
    with torch.no_grad():
        refinement.pose.normal_(0, 0.02)
        refinement.expression.normal_(0, 0.05)
    info = AvatarInfo(expression_labels=subject.expression_labels, expression_space=subject.expression_space)
    save_avatar(root / "avatar.pt", avatar, info, refinement.export())
    save_avatar(root / "plain.pt", avatar, info)
    return root, subject, avatar, refinement


def test_the_refined_subject_validates_and_carries_the_residuals(trained, tmp_path):
    root, subject, avatar, refinement = trained
    out = tmp_path / "refined"
    assert main(["refine-export", "--avatar", str(root / "avatar.pt"), "--data", str(subject.root), "--out", str(out)]) == 0
    refined = load_subject(out)  # images, masks, template found through the rewritten paths
    assert refined.num_frames == subject.num_frames and refined.splits == subject.splits
    assert json.loads((out / "transforms.json").read_text())["refined_from"]["frames"] == len(subject.split("train"))
    for i in range(subject.num_frames):
        k = refinement.instant_of(i)
        if k < 0:  # test and novel-view frames keep the tracker's values
            np.testing.assert_array_equal(refined.expressions[i], subject.expressions[i])
            np.testing.assert_allclose(refined.head_poses[i], subject.head_poses[i], atol=1e-7)
            continue
        np.testing.assert_allclose(refined.expressions[i], subject.expressions[i] + refinement.expression[k].detach().numpy(), rtol=1e-6, atol=1e-6)
        expected = torch.as_tensor(subject.head_poses[i]) @ pose_correction(refinement.pose[k].detach(), avatar.center, avatar.radius)
        np.testing.assert_allclose(refined.head_poses[i], expected.numpy(), atol=1e-5)
    assert refined.image_paths[0].resolve() == subject.image_paths[0].resolve()


def test_residuals_travel_in_avatar_pt(trained):
    root, _, _, refinement = trained
    saved = load_refinement(root / "avatar.pt")
    assert [tuple(x) for x in saved["instants"]] == refinement.instants
    torch.testing.assert_close(saved["pose"], refinement.pose.detach())
    assert load_refinement(root / "plain.pt") is None


def test_an_avatar_without_refinement_or_another_subject_is_refused(trained, tmp_path):
    root, subject, _, _ = trained
    with pytest.raises(EAvatarError, match=r"plain.pt: trained without tracking refinement"):
        export_refined_subject(root / "plain.pt", subject.root, tmp_path / "a")
    other = generate_synthetic_subject(tmp_path / "other", SyntheticConfig(resolution=24, n_cameras=2, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=4, mesh_subdivisions=3))
    with pytest.raises(EAvatarError, match=r"training instant .* has no residual in .*avatar.pt: not the subject it was trained on"):
        export_refined_subject(root / "avatar.pt", other, tmp_path / "b")
    with pytest.raises(EAvatarError, match=r"is the subject itself"):
        export_refined_subject(root / "avatar.pt", subject.root, subject.root)


def test_the_notebook_view_plots_tracked_against_refined(trained):
    from eavatar.ui.refinement_view import refinement_curves, refinement_figure

    root, subject, _, refinement = trained
    curves = refinement_curves(root / "avatar.pt", subject.root, strongest=3)
    camera0 = [i for i in subject.split("train") if subject.camera_indices[i] == subject.camera_ids()[0]]
    assert sorted(curves["frames"]) == sorted(camera0) and len(curves["labels"]) == 3
    change = np.abs(curves["refined"] - curves["tracked"]).max(axis=0)
    assert (change > 0).all() and (curves["rotation_deg"] > 0).all()
    strongest = refinement.expression.detach().square().mean(0).sqrt().argmax()
    assert curves["labels"][0] == subject.expression_labels[int(strongest)]
    assert len(refinement_figure(root / "avatar.pt", subject.root).data) == 2 * 4 + 2
