"""nerfstudio's full-image datamanager, made to work on CPU-only machines.

nerfstudio caches "cpu" images in pinned memory, which needs a CUDA driver, and forces
that mode above 500 images; on a CPU-only machine we keep the cache in plain memory. The
order in which training frames are drawn is saved with the checkpoint, so a resumed run draws
the frames an uninterrupted one would.

It also stops the nerfstudio tools that cannot handle an avatar (:mod:`eavatar.ns.tools`) and
carries the viewer's first camera (:class:`eavatar.ns.viewer.FaceTheHead`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, Type

from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset

from eavatar.data.frames import load_region_map
from eavatar.ns.tools import refuse_unsupported_tool
from eavatar.ns.viewer import FaceTheHead, front_view


@dataclass
class EAvatarDatamanagerConfig(FullImageDatamanagerConfig):
    _target: Type = field(default_factory=lambda: EAvatarDatamanager)
    cache_images: Literal["cpu", "gpu"] = "cpu"
    cache_images_type: Literal["uint8", "float32"] = "uint8"


class EAvatarDataset(InputDataset):
    """nerfstudio's dataset plus each frame's face-region map (``batch["regions"]``, [H, W] uint8)
    where the subject has one: the loss can weight the mouth and the eyes."""

    def get_metadata(self, data: dict) -> dict:
        subject = self._dataparser_outputs.metadata["subject"]
        frame = int(self._dataparser_outputs.cameras.metadata["frame_index"][data["image_idx"]])
        path = subject.region_paths[frame]
        return {} if path is None else {"regions": load_region_map(path)}


class EAvatarDatamanager(FullImageDatamanager[EAvatarDataset]):
    def __init__(self, config: EAvatarDatamanagerConfig, *args, **kwargs):
        refuse_unsupported_tool(config.dataparser.data)  # ns-export gaussian-splat, ns-render camera-path: stop before loading
        super().__init__(config, *args, **kwargs)
        self.face_the_head = FaceTheHead(front_view(self.train_dataparser_outputs.metadata["subject"]))  # the viewer's first camera

    def _load_images(self, split, cache_images_device):
        if str(self.device).startswith("cpu"):
            cache_images_device = "gpu"  # nerfstudio's name for "on the training device": plain memory here
        return super()._load_images(split, cache_images_device=cache_images_device)

    def get_extra_state(self) -> dict:
        rng = getattr(self, "random_generator", None)
        return {"train_unseen_cameras": list(self.train_unseen_cameras), "rng": None if rng is None else rng.getstate()}

    def set_extra_state(self, state: dict) -> None:
        self.train_unseen_cameras = list(state["train_unseen_cameras"])
        if state["rng"] is not None:
            self.random_generator = random.Random()
            self.random_generator.setstate(state["rng"])
