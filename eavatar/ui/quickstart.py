"""What the notebooks and benchmarks start from: the subject and avatar `dvc repro` made, else a small subject and an untrained avatar.

A fresh clone (and CI) has no ``data/`` and no ``artifacts/``; the notebooks must still run
and their controls must still visibly do something. An untrained avatar's output heads are
zero (training starts from the canonical set), so expression sliders would change nothing:
:func:`untrained_avatar` gives the expression heads small random weights instead. It is a
demonstration, not a model, and every caller says so.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig, load_mesh
from eavatar.avatar.model import AvatarConfig, HeadAvatar
from eavatar.data.subject import Subject, load_subject
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

#: A subject small enough to generate in a few seconds (notebooks on a fresh clone, tests).
SMALL_SUBJECT = SyntheticConfig(resolution=64, n_cameras=3, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=8, mesh_subdivisions=4)


def subject_or_small(path: str | Path) -> tuple[Subject, str]:
    """The subject at ``path``, else a freshly generated small synthetic one; and a note saying which."""
    path = Path(path)
    if (path / "transforms.json").is_file():
        return load_subject(path), f"subject: {path}"
    small = generate_synthetic_subject(Path(tempfile.mkdtemp()) / "synthetic", SMALL_SUBJECT)
    return load_subject(small), f"{path} not found (run `dvc repro`): using a small generated synthetic subject"


def params_avatar_config(params: str | Path = "params.yaml", num_points: int | None = None) -> AvatarConfig:
    """The avatar `dvc repro` trains (``ns-train eavatar``'s, with ``params: train`` applied), optionally re-seeded with ``num_points``."""
    from eavatar.config import apply_overrides, load_params
    from eavatar.ns.method import eavatar_trainer_config

    trainer = apply_overrides(eavatar_trainer_config(), load_params(params, "train"), f"{params}:train")
    cfg = trainer.pipeline.model.avatar
    if num_points is not None:
        cfg = dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, num_points=num_points))
    return cfg


def untrained_avatar(subject: Subject, cfg: AvatarConfig, response: float = 0.06, code_gain: float = 5.0, seed: int = 0) -> HeadAvatar:
    """An avatar seeded on the subject's template whose expression heads are random (std ``response``), not zero.

    The first layers' expression-code columns are scaled by ``code_gain`` so the response
    depends on the expression more than on the position (at initialisation it barely does).
    """
    if subject.template_mesh is None:
        raise ValueError(f"{subject.transforms_path}: template_mesh is required to seed the Gaussians")
    torch.manual_seed(seed)
    avatar = HeadAvatar.from_canonical(CanonicalGaussians.from_mesh(load_mesh(subject.template_mesh), cfg.init), subject.d_exp, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for trunk in (avatar.generator.expression.deform, avatar.generator.expression.attributes):
            trunk[-1].weight.copy_(response * torch.randn(trunk[-1].weight.shape, generator=gen))
            trunk[0].weight[:, -subject.d_exp :] *= code_gain  # inputs are cat([position or feature, code])
    return avatar.eval()


@dataclass
class LoadedAvatar:
    """An avatar with what driving it needs, and a note on where it came from."""

    avatar: HeadAvatar
    reference_head_pose: Tensor  # [4, 4] world-from-head
    background: Tensor  # [3]
    note: str
    trained: bool


def avatar_or_untrained(path: str | Path, subject: Subject, params: str | Path = "params.yaml", num_points: int | None = None) -> LoadedAvatar:
    """``avatar.pt`` at ``path`` if it exists (it must match the subject's labels), else :func:`untrained_avatar`."""
    from eavatar.avatar.checkpoint import load_avatar

    path = Path(path)
    if path.is_file():
        avatar, info = load_avatar(path)
        if info.expression_labels != list(subject.expression_labels):
            raise ValueError(f"{path} was trained on {info.expression_labels}, {subject.root} has {subject.expression_labels}")
        pose, bg = torch.tensor(info.reference_head_pose), torch.tensor(info.background)
        return LoadedAvatar(avatar, pose, bg, f"trained avatar {path} ({len(avatar.canonical):,} Gaussians, step {info.step})", True)
    cfg = params_avatar_config(params, num_points) if Path(params).is_file() else AvatarConfig(init=GaussianInitConfig(num_points=num_points or 3000))
    avatar = untrained_avatar(subject, cfg)
    pose = torch.as_tensor(subject.head_poses[subject.split("train")[0]], dtype=torch.float32)
    note = f"{path} not found (run `dvc repro`): an UNTRAINED avatar with random expression response ({len(avatar.canonical):,} Gaussians)"
    return LoadedAvatar(avatar, pose, torch.ones(3), note, False)
