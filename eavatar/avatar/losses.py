"""Stage II image losses: L_rgb (L1 + D-SSIM) and LPIPS on random crops, as one named dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure


@dataclass
class LossConfig:
    """Weights of the Stage II loss L = w_rgb L_rgb + w_lpips L_lpips."""

    rgb_weight: float = 1.0
    """w_rgb (paper: 1.0)."""
    ssim_lambda: float = 0.2
    """Share of D-SSIM inside L_rgb = (1 - l) L1 + l (1 - SSIM) (3DGS's 0.2; the paper gives no split)."""
    lpips_weight: float = 0.1
    """w_lpips (paper: 0.1). 0 disables LPIPS and its weights are then not needed."""
    lpips_crop: int = 64
    """Side of the random square crop LPIPS sees (paper: "random crops", size unstated)."""
    lpips_start_step: int = 1000
    """LPIPS joins after this step, once the coarse image is right (a CPU-budget choice)."""
    mouth_weight: float = 0.0
    """Extra weight of mouth pixels in L_rgb's L1: weight 1 + mouth_weight there (needs region
    maps; the paper weights no region). Where the expression detail is, the gradients that drive
    densification are larger too."""
    eyes_weight: float = 0.0
    """Extra weight of eye pixels in L_rgb's L1, as ``mouth_weight``."""


def random_crop(pred: Tensor, gt: Tensor, size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The same random ``size`` x ``size`` crop of two [H, W, 3] images (whole image if smaller)."""
    h, w = pred.shape[:2]
    if size >= min(h, w):
        return pred, gt
    y = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    x = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return pred[y : y + size, x : x + size], gt[y : y + size, x : x + size]


def image_losses(
    pred: Tensor,  # [H, W, 3]
    gt: Tensor,  # [H, W, 3]
    cfg: LossConfig,
    step: int,
    lpips_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    pixel_weights: Tensor | None = None,  # [H, W]
) -> dict[str, Tensor]:
    """Weighted loss terms by name; their sum is the training loss.

    ``lpips_fn`` takes two [B, 3, h, w] images in [0, 1] and returns [B] distances;
    ``pixel_weights`` (see :func:`region_weights`) weight L1 per pixel.
    """
    error = (pred - gt).abs()
    l1 = (error * pixel_weights[..., None]).mean() if pixel_weights is not None else error.mean()
    ssim = structural_similarity_index_measure(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], data_range=1.0)
    losses = {"rgb": cfg.rgb_weight * ((1 - cfg.ssim_lambda) * l1 + cfg.ssim_lambda * (1 - ssim))}
    if cfg.lpips_weight > 0 and lpips_fn is not None:
        # The key is present from step 0 (zero until lpips_start_step) so every log has the same columns.
        losses["lpips"] = pred.new_zeros(())
        if step >= cfg.lpips_start_step:
            p, g = random_crop(pred, gt, cfg.lpips_crop)
            losses["lpips"] = cfg.lpips_weight * lpips_fn(p.permute(2, 0, 1)[None], g.permute(2, 0, 1)[None]).mean()
    return losses


def region_weights(
    regions: Tensor,  # [H, W] integer labels
    labels: dict[str, int],
    cfg: LossConfig,
) -> Tensor | None:  # [H, W]
    """1 everywhere, 1 + ``mouth_weight`` on mouth pixels and 1 + ``eyes_weight`` on eye pixels
    (None when no region is weighted)."""
    extra = {name: w for name, w in (("mouth", cfg.mouth_weight), ("eyes", cfg.eyes_weight)) if w and name in labels}
    if not extra:
        return None
    weights = torch.ones(regions.shape, dtype=torch.float32, device=regions.device)
    for name, w in extra.items():
        weights[regions == labels[name]] += w
    return weights
