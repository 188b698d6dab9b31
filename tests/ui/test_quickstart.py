"""What notebooks and benchmarks use on a fresh clone: the params.yaml avatar, untrained but responsive."""

from pathlib import Path

import pytest
import torch

from eavatar.data.subject import load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.ui.quickstart import avatar_or_untrained, params_avatar_config, untrained_avatar

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    cfg = SyntheticConfig(resolution=32, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("fb") / "s", cfg))


def test_params_config_is_the_committed_default_avatar(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  pipeline:\n    model:\n      avatar:\n        init: {num_points: 500}\n        generator: {hidden_dim: 16}\n")
    cfg = params_avatar_config(tmp_path / "params.yaml", num_points=700)
    assert (cfg.init.num_points, cfg.generator.hidden_dim) == (700, 16)
    assert params_avatar_config(REPO / "params.yaml").generator.hidden_dim == 64


def test_untrained_avatar_moves_with_the_expression(subject):
    from eavatar.avatar.generator import GeneratorConfig
    from eavatar.avatar.gaussians import GaussianInitConfig
    from eavatar.avatar.model import AvatarConfig

    cfg = AvatarConfig(init=GaussianInitConfig(num_points=300, feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2))
    avatar = untrained_avatar(subject, cfg)
    pose = torch.eye(4)
    with torch.no_grad():
        neutral, jaw = avatar.frame(torch.zeros(subject.d_exp), pose), avatar.frame(torch.ones(subject.d_exp), pose)
    assert (jaw.means - neutral.means).norm(dim=-1).max() > 1e-3
    assert (jaw.colors - neutral.colors).abs().max() > 1e-3


def test_missing_checkpoint_falls_back_and_says_so(subject, tmp_path):
    loaded = avatar_or_untrained(tmp_path / "avatar.pt", subject, params=tmp_path / "absent.yaml", num_points=200)
    assert not loaded.trained and "UNTRAINED" in loaded.note and len(loaded.avatar.canonical) == 200
    assert loaded.reference_head_pose.shape == (4, 4)


def test_an_existing_checkpoint_is_loaded_and_must_match_the_labels(subject, tmp_path):
    from eavatar.avatar.checkpoint import AvatarInfo, save_avatar
    from tests.avatar.conftest import make_avatar

    avatar = make_avatar(n=150, d_exp=subject.d_exp)
    pose = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0.5], [0, 0, 0, 1.0]]
    save_avatar(tmp_path / "avatar.pt", avatar, AvatarInfo(list(subject.expression_labels), "synthetic", reference_head_pose=pose, step=7))
    loaded = avatar_or_untrained(tmp_path / "avatar.pt", subject)
    assert loaded.trained and "step 7" in loaded.note and len(loaded.avatar.canonical) == 150
    assert float(loaded.reference_head_pose[2, 3]) == 0.5
    save_avatar(tmp_path / "other.pt", avatar, AvatarInfo(["a"] * subject.d_exp, "synthetic"))
    with pytest.raises(ValueError, match="other.pt was trained on"):
        avatar_or_untrained(tmp_path / "other.pt", subject)
