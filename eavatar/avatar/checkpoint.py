"""A trained avatar as one file: architecture, weights and what a user needs to drive it.

nerfstudio's ``step-*.ckpt`` holds the optimiser state for resuming; ``avatar.pt`` is what
evaluation, rendering, export and the notebooks load, with no nerfstudio involved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from eavatar.avatar.control import SparseControlConfig
from eavatar.avatar.gaussians import CanonicalGaussians, GaussianInitConfig
from eavatar.avatar.generator import GeneratorConfig
from eavatar.avatar.model import AvatarConfig, HeadAvatar

FORMAT = "eavatar-avatar/1"


@dataclass
class AvatarInfo:
    """What travels with the weights."""

    expression_labels: list[str]
    expression_space: str
    background: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    reference_head_pose: list[list[float]] = field(default_factory=lambda: torch.eye(4).tolist())
    subject: str = ""
    step: int = 0


def save_avatar(path: str | Path, avatar: HeadAvatar, info: AvatarInfo) -> Path:
    """Write ``avatar.pt`` atomically (a killed process never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": asdict(avatar.cfg),
        "d_exp": avatar.d_exp,
        "state_dict": {k: v.detach().cpu() for k, v in avatar.state_dict().items()},
        "info": asdict(info),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_avatar(path: str | Path, device: str | torch.device = "cpu") -> tuple[HeadAvatar, AvatarInfo]:
    """Rebuild a HeadAvatar from ``avatar.pt``; errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: avatar checkpoint not found (train first: `dvc repro train` or `ns-train eavatar`)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: format is {payload.get('format')!r}, expected {FORMAT!r}")
    cfg_dict = payload["config"]
    cfg = AvatarConfig(
        init=GaussianInitConfig(**cfg_dict["init"]),
        generator=GeneratorConfig(**cfg_dict["generator"]),
        control=SparseControlConfig(**cfg_dict.get("control", {})),
    )
    state = payload["state_dict"]
    canonical = CanonicalGaussians.empty_like_state(state, prefix="canonical.params.")
    avatar = HeadAvatar(canonical, payload["d_exp"], cfg, state["center"], float(state["radius"]))
    avatar.load_state_dict(state)
    return avatar.to(device).eval(), AvatarInfo(**payload["info"])
