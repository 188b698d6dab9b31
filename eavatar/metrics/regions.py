"""Image error restricted to face regions (mouth, eyes, brows, skin) from ground-truth region maps.

Whole-image scores are dominated by skin and hair, which every variant renders well; the
mouth, the eyes and the brows are where expression modelling shows. Per region and frame
(docs/metrics.md, "Region metrics"):

* PSNR over the region's pixels;
* SSIM: the SSIM map (:func:`eavatar.metrics.image.ssim_map`) averaged over the region's
  pixels whose 11x11 window lies inside the image;
* LPIPS on the region's bounding box, widened to at least ``LPIPS_MIN_CROP`` pixels a side
  (AlexNet LPIPS needs 31), both images cropped identically.

A region with fewer than ``MIN_REGION_PIXELS`` pixels in a frame (absent, closed, seen edge
on) gives None for that frame, never a number made from a few pixels, and never 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from eavatar.metrics.image import _as_batch, psnr, ssim_map
from eavatar.metrics.lpips import LPIPSUnavailable, load_lpips

#: Regions scored when the subject names them in ``region_labels``.
SCORED_REGIONS = ("mouth", "eyes", "brows", "skin")
#: Fewest pixels of a region for a frame to count towards that region's score.
MIN_REGION_PIXELS = 16
#: Smallest side of a region's LPIPS crop (AlexNet LPIPS needs at least 31 pixels).
LPIPS_MIN_CROP = 32
#: Per-frame values of each region: ``{region}_{metric}``.
REGION_METRICS = ("psnr", "ssim", "lpips")


def _check(regions: Tensor, gt: Tensor) -> None:
    if regions.shape != gt.shape[:2]:
        raise ValueError(f"region map of shape {tuple(regions.shape)} does not match the image {tuple(gt.shape)}")


def region_psnr(
    pred: Tensor,  # [H, W, 3] in [0, 1]
    gt: Tensor,  # [H, W, 3]
    regions: Tensor,  # [H, W] integer labels of gt
    region_labels: dict[str, int],
) -> dict[str, float | None]:
    """``{name}_psnr`` for each scored region the subject names; None where it has too few pixels."""
    _check(regions, gt)
    out: dict[str, float | None] = {}
    for name in SCORED_REGIONS:
        if name not in region_labels:
            continue
        mask = regions.to(gt.device) == region_labels[name]
        out[f"{name}_psnr"] = float(psnr(pred, gt, mask)) if int(mask.sum()) >= MIN_REGION_PIXELS else None
    return out


def region_crop(
    mask: Tensor,  # [H, W] bool
    min_size: int = LPIPS_MIN_CROP,
) -> tuple[slice, slice] | None:
    """Rows and columns of the mask's bounding box, each widened about its centre to at least
    ``min_size`` and shifted to lie inside the image; None for an empty mask or an image
    smaller than ``min_size``.

    >>> m = torch.zeros(64, 64, dtype=torch.bool); m[30:34, 40:50] = True
    >>> region_crop(m)  # (slice(16, 48), slice(29, 61))
    """
    h, w = mask.shape
    if not bool(mask.any()) or min(h, w) < min_size:
        return None
    rows, cols = torch.nonzero(mask.any(dim=1))[:, 0], torch.nonzero(mask.any(dim=0))[:, 0]

    def widen(lo: int, hi: int, size: int) -> slice:  # [lo, hi) grown to min_size, kept in [0, size)
        grow = max(min_size - (hi - lo), 0)
        lo, hi = lo - grow // 2, hi + grow - grow // 2
        shift = max(-lo, 0) - max(hi - size, 0)
        return slice(lo + shift, hi + shift)

    return widen(int(rows[0]), int(rows[-1]) + 1, h), widen(int(cols[0]), int(cols[-1]) + 1, w)


@torch.no_grad()
def region_metrics(
    pred: Tensor,  # [H, W, 3] in [0, 1]
    gt: Tensor,  # [H, W, 3]
    regions: Tensor,  # [H, W] integer labels of gt
    region_labels: dict[str, int],
    net: str = "alex",
) -> dict[str, float | int | None]:
    """PSNR, SSIM and LPIPS of each scored region the subject names, and its pixel count.

    Args:
        pred: [H, W, 3] render, clamped to [0, 1] here as :func:`image_metrics` does.
        gt: [H, W, 3] ground truth on the same background.
        regions: [H, W] labels of the ground truth's pixels.
        region_labels: label of each region name (``Subject.region_labels``).
        net: LPIPS backbone.

    Returns:
        ``{name}_pixels`` (int) and ``{name}_psnr`` / ``_ssim`` / ``_lpips`` per region: None
        when the region has fewer than MIN_REGION_PIXELS pixels (SSIM: inside the image's
        5-pixel border), when no LPIPS crop fits, or when the LPIPS weights are missing.
        Identical images give inf, 1 and 0.

    >>> region_metrics(gt, gt, regions, {"mouth": 2})  # {"mouth_pixels": 120, "mouth_psnr": inf, "mouth_ssim": 1.0, "mouth_lpips": 0.0}
    """
    _check(regions, gt)
    pred, gt = _as_batch(pred, gt)
    pred = pred.clamp(0, 1)
    regions = regions.to(gt.device)
    smap = ssim_map(pred, gt)[0]  # [H, W], NaN on the border
    try:
        model = load_lpips(net, gt.device)
    except LPIPSUnavailable:
        model = None
    out: dict[str, float | int | None] = {}
    for name in SCORED_REGIONS:
        if name not in region_labels:
            continue
        mask = regions == region_labels[name]
        pixels = int(mask.sum())
        out[f"{name}_pixels"] = pixels
        values = dict.fromkeys(REGION_METRICS)
        if pixels >= MIN_REGION_PIXELS:
            values["psnr"] = float(psnr(pred, gt, mask))
            inner = smap[mask]
            inner = inner[~inner.isnan()]
            values["ssim"] = float(inner.mean()) if len(inner) >= MIN_REGION_PIXELS else None
            crop = region_crop(mask)
            if crop is not None and model is not None:
                a, b = (x[0, crop[0], crop[1]].permute(2, 0, 1)[None] for x in (pred, gt))
                values["lpips"] = float(model(a, b)[0])
        out.update({f"{name}_{k}": v for k, v in values.items()})
    return out
