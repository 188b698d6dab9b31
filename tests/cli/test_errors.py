"""Expected errors reach the user as one line naming the file and the fix, without a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from eavatar.avatar.checkpoint import AvatarInfo, load_avatar, save_avatar
from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.model import AvatarConfig, HeadAvatar
from eavatar.cli.main import EXIT_ERROR, main
from eavatar.data.subject import SubjectError
from eavatar.errors import CheckpointError, EAvatarError


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    """A small valid avatar.pt and a truncated copy of it."""
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(64, 3)).astype(np.float32)
    cfg = AvatarConfig(init=GaussianInitConfig(feature_dim=8), generator=GeneratorConfig(hidden_dim=16, num_layers=2, pos_frequencies=2))
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_points(0.1 * pts / np.linalg.norm(pts, axis=1, keepdims=True), cfg.init), 5, cfg)
    root = tmp_path_factory.mktemp("avatar")
    good = save_avatar(root / "avatar.pt", avatar, AvatarInfo(expression_labels=[f"e{i}" for i in range(5)], expression_space="synthetic"))
    truncated = root / "truncated" / "avatar.pt"
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return good, truncated


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {}, "evaluate": {}, "render": {}}))
    return path


def run_cli(capsys, argv):
    """main()'s exit status and stderr for an expected error: SystemExit, its text the line printed."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert err == str(exit_.value) + "\n"
    return exit_.value.code, err


@pytest.mark.parametrize("content", [b"", b"garbage, not a torch file", None], ids=["empty", "garbage", "truncated"])
def test_unreadable_checkpoint_names_the_file_and_the_fix(avatar_file, tmp_path, content):
    path = avatar_file[1] if content is None else tmp_path / "avatar.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_avatar(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "eavatar train" in message and "dvc repro train" in message
    assert "\n" not in message and isinstance(err.value, EAvatarError)


def test_checkpoint_of_another_kind_and_a_missing_one(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: format is 'list'.*eavatar train"):
        load_avatar(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: avatar checkpoint not found") as err:
        load_avatar(tmp_path / "missing.pt")
    assert isinstance(err.value, CheckpointError)


def test_evaluate_truncated_checkpoint_is_one_line(avatar_file, params, tmp_path, capsys):
    truncated = avatar_file[1]
    code, err = run_cli(capsys, ["evaluate", "--params", str(params), "--avatar", str(truncated), "--data", str(tmp_path / "subject"), "--out", str(tmp_path / "eval"), "--metrics", str(tmp_path / "m.json")])
    assert code == EXIT_ERROR
    assert err.startswith(f"eavatar evaluate: error: {truncated}: ") and "eavatar train" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("stage", ["train", "evaluate", "render"])
def test_missing_subject_is_one_line(stage, avatar_file, params, tmp_path, capsys):
    missing = tmp_path / "no-such-subject"
    argv = [stage, "--params", str(params), "--data", str(missing), "--out", str(tmp_path / "out")]
    if stage != "train":
        argv += ["--avatar", str(avatar_file[0])]
    if stage == "evaluate":
        argv += ["--metrics", str(tmp_path / "m.json")]
    code, err = run_cli(capsys, argv)
    assert code == EXIT_ERROR
    assert err.startswith(f"eavatar {stage}: error: {missing}"), err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "avatar.pt").exists()


def test_params_errors_get_the_same_prefix(tmp_path, capsys):
    """`raise SystemExit("<file>: ...")` of the stages and a missing params file: same line, non-zero."""
    code, err = run_cli(capsys, ["evaluate", "--params", str(tmp_path / "nope.yaml")])
    assert code == EXIT_ERROR and err == f"eavatar evaluate: error: {tmp_path / 'nope.yaml'}: params file not found\n"


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    argv = ["evaluate", "--params", str(tmp_path / "p.yaml"), "--avatar", str(tmp_path / "missing.pt"), "--data", str(tmp_path)]
    (tmp_path / "p.yaml").write_text("evaluate: {}\n")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        main([*argv, "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", *argv])
    monkeypatch.setenv("EAVATAR_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(argv)
    monkeypatch.setenv("EAVATAR_DEBUG", "0")
    code, err = run_cli(capsys, argv)
    assert code == EXIT_ERROR and "missing.pt: avatar checkpoint not found" in err


def test_error_classes_share_the_base():
    from eavatar.data.face_tracker import FaceModelMissing
    from eavatar.data.importers.common import SourceError
    from eavatar.data.video import VideoError
    from eavatar.geometry.prior import PriorError
    from eavatar.metrics.lpips import LPIPSUnavailable

    for cls in (SubjectError, SourceError, VideoError, FaceModelMissing, PriorError, LPIPSUnavailable, CheckpointError):
        assert issubclass(cls, EAvatarError), cls
    assert issubclass(SubjectError, ValueError) and issubclass(FaceModelMissing, FileNotFoundError)  # old except clauses still match
