"""Error restricted to face regions (mouth, eyes) from ground-truth region maps.

Whole-image PSNR is dominated by skin and hair, which every variant renders well; the
mouth and the eyes are where expression modelling shows. A region too small in a frame
(seen edge-on, or closed) is skipped for that frame rather than scored on a few pixels.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from eavatar.metrics.image import psnr

#: Regions scored when the subject names them in ``region_labels``.
SCORED_REGIONS = ("mouth", "eyes")
#: Fewest pixels of a region for a frame to count towards that region's score.
MIN_REGION_PIXELS = 16


def load_region_map(path: str | Path) -> Tensor:  # -> [H, W] uint8
    """A region label image (one integer label per pixel)."""
    labels = np.asarray(iio.imread(path))
    if labels.ndim == 3:
        labels = labels[..., 0]
    return torch.from_numpy(labels.astype(np.uint8))


def region_psnr(
    pred: Tensor,  # [H, W, 3] in [0, 1]
    gt: Tensor,  # [H, W, 3]
    regions: Tensor,  # [H, W] integer labels of gt
    region_labels: dict[str, int],
) -> dict[str, float | None]:
    """``{name}_psnr`` for each scored region the subject names; None where it has too few pixels."""
    if regions.shape != gt.shape[:2]:
        raise ValueError(f"region map of shape {tuple(regions.shape)} does not match the image {tuple(gt.shape)}")
    out: dict[str, float | None] = {}
    for name in SCORED_REGIONS:
        if name not in region_labels:
            continue
        mask = regions.to(gt.device) == region_labels[name]
        out[f"{name}_psnr"] = float(psnr(pred, gt, mask)) if int(mask.sum()) >= MIN_REGION_PIXELS else None
    return out
