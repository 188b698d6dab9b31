"""nerfstudio's full-image datamanager, made to work on CPU-only machines.

nerfstudio caches "cpu" images in pinned memory, which needs a CUDA driver, and forces
that mode above 500 images; on a CPU-only machine we keep the cache in plain memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig


@dataclass
class EAvatarDatamanagerConfig(FullImageDatamanagerConfig):
    _target: Type = field(default_factory=lambda: EAvatarDatamanager)
    cache_images: Literal["cpu", "gpu"] = "cpu"
    cache_images_type: Literal["uint8", "float32"] = "uint8"


class EAvatarDatamanager(FullImageDatamanager):
    def _load_images(self, split, cache_images_device):
        if str(self.device).startswith("cpu"):
            cache_images_device = "gpu"  # nerfstudio's name for "on the training device": plain memory here
        return super()._load_images(split, cache_images_device=cache_images_device)
