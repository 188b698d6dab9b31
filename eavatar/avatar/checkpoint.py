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
from eavatar.errors import CheckpointError, CheckpointMissing

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


def save_avatar(path: str | Path, avatar: HeadAvatar, info: AvatarInfo, refinement: dict | None = None) -> Path:
    """Write ``avatar.pt`` atomically (a killed process never leaves half a file); ``refinement``:
    the training instants' tracking residuals (:meth:`TrackingRefinement.export`), when trained with them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": asdict(avatar.cfg),
        "d_exp": avatar.d_exp,
        "state_dict": {k: v.detach().cpu() for k, v in avatar.state_dict().items()},
        "info": asdict(info),
    }
    if refinement is not None:
        payload["refinement"] = refinement
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


RETRAIN = "re-run `eavatar train` (or `dvc repro train`) to write it again"


def load_avatar(path: str | Path, device: str | torch.device = "cpu") -> tuple[HeadAvatar, AvatarInfo]:
    """Rebuild a HeadAvatar from ``avatar.pt``; errors name the file, what is wrong and the fix.

    Raises:
        CheckpointMissing: ``path`` does not exist (a ``FileNotFoundError``).
        CheckpointError: ``path`` is truncated, not a torch file, or not an eavatar avatar.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(f"{path}: avatar checkpoint not found (train first: `eavatar train`, `dvc repro train` or `ns-train eavatar`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, garbage bytes, foreign pickle: all one answer
        raise CheckpointError(f"{path}: not a readable avatar checkpoint, truncated or corrupt ({type(err).__name__}: {first_line(err)}); {RETRAIN}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: format is {found!r}, expected {FORMAT!r} (not an eavatar avatar.pt); {RETRAIN}")
    try:
        cfg_dict = payload["config"]
        cfg = AvatarConfig(
            init=GaussianInitConfig(**cfg_dict["init"]),
            generator=GeneratorConfig(**cfg_dict["generator"]),
            # avatars saved before a field trained as the code did then: the per-frame set, the normalised blend
            control=SparseControlConfig(**{"select": "frame", "blend": "normalised", **cfg_dict.get("control", {})}),
            pixel_filter=cfg_dict.get("pixel_filter", 0.3),  # avatars saved before the field trained with gsplat's 0.3
        )
        state = payload["state_dict"]
        canonical = CanonicalGaussians.empty_like_state(state, prefix="canonical.params.")
        avatar = HeadAvatar(canonical, payload["d_exp"], cfg, state["center"], float(state["radius"]))
        avatar.load_state_dict(state)
        info = AvatarInfo(**payload["info"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        # written by another version of the code (renamed field, changed shape)
        raise CheckpointError(f"{path}: does not match this version of eavatar ({type(err).__name__}: {first_line(err)}); {RETRAIN}") from err
    return avatar.to(device).eval(), info


def load_refinement(path: str | Path) -> dict | None:
    """The tracking residuals an avatar was trained with ({instants, pose [T, 6], expression [T, d_exp]}),
    or None when it was trained without refinement."""
    load_avatar(path)  # the same checks and errors
    refinement = torch.load(path, map_location="cpu", weights_only=True).get("refinement")
    if refinement is not None and not (len(refinement["instants"]) == len(refinement["pose"]) == len(refinement["expression"])):
        raise CheckpointError(f"{path}: refinement: {len(refinement['instants'])} instants but {len(refinement['pose'])} pose and {len(refinement['expression'])} expression residuals; {RETRAIN}")
    return refinement


def first_line(err: BaseException, limit: int = 120) -> str:
    """The first sentence of an error, shortened: torch's own advice (``weights_only=False``) must not read as the fix."""
    lines = str(err).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
