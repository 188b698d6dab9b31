"""Reads a subject folder (docs/subject-format.md) into nerfstudio's DataparserOutputs.

Per-frame expression and head pose ride in ``Cameras.metadata`` so the full-image
datamanager hands them to the model with each camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from eavatar.data.frames import frame_arrays
from eavatar.data.subject import Subject, load_subject


@dataclass
class EAvatarDataParserConfig(DataParserConfig):
    """A subject folder in the EAvatar subject format."""

    _target: Type = field(default_factory=lambda: EAvatarDataParser)
    data: Path = Path("data/synthetic")
    """Subject folder (or its transforms.json)."""
    eval_split: str = "test"
    """Subject split nerfstudio evaluates on (its 'val' and 'test' both map here unless the subject has a 'val' split)."""


def subject_split_indices(subject: Subject, nerfstudio_split: str, eval_split: str) -> torch.Tensor:
    """Frame indices for nerfstudio's split name ('train', 'val', 'test')."""
    if nerfstudio_split == "train":
        name = "train"
    elif nerfstudio_split == "val" and "val" in subject.splits:
        name = "val"
    else:
        name = eval_split
    return torch.as_tensor(subject.split(name), dtype=torch.long)


def subject_cameras(subject: Subject, indices: torch.Tensor) -> Cameras:
    """nerfstudio Cameras of the chosen frames, with expression, head pose and frame index as metadata."""
    a = frame_arrays(subject, indices.numpy())
    intr = a["intrinsics"]
    return Cameras(
        camera_to_worlds=a["c2w"][:, :3, :4].contiguous(),
        fx=intr[:, 0:1],
        fy=intr[:, 1:2],
        cx=intr[:, 2:3],
        cy=intr[:, 3:4],
        width=a["size"][:, 0:1],
        height=a["size"][:, 1:2],
        camera_type=CameraType.PERSPECTIVE,
        metadata={
            "expression": a["expression"],
            "head_pose": a["head_pose"].reshape(-1, 16),
            "frame_index": indices[:, None].clone(),
        },
    )


class EAvatarDataParser(DataParser):
    config: EAvatarDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        subject = load_subject(self.config.data)
        indices = subject_split_indices(subject, split, self.config.eval_split)
        idx = indices.tolist()
        masks = [subject.mask_paths[i] for i in idx]
        extent = float(abs(subject.c2w[:, :3, 3]).max())
        return DataparserOutputs(
            image_filenames=[subject.image_paths[i] for i in idx],
            cameras=subject_cameras(subject, indices),
            mask_filenames=masks if all(m is not None for m in masks) else None,
            scene_box=SceneBox(aabb=torch.tensor([[-extent] * 3, [extent] * 3], dtype=torch.float32)),
            metadata={"subject": subject},
        )


eavatar_dataparser = DataParserSpecification(
    config=EAvatarDataParserConfig(), description="EAvatar subject folder (transforms.json + expressions, head poses)"
)
