"""Stage II image losses: L_rgb (L1 + D-SSIM) and LPIPS on random crops, as one named dict."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2  # (K1 * data range 1)^2
SSIM_C2 = 0.03**2


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


@lru_cache(maxsize=8)
def _window_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:  # [n, n]
    """The reflect-padded 11-tap Gaussian window along one axis of length ``n`` as a matrix:
    ``x @ M`` blurs the last axis as torchmetrics' SSIM does (pad 5 by reflection, valid
    convolution). Built once per size in float64, then cast."""
    r = SSIM_WINDOW // 2
    taps = torch.arange(-r, r + 1, dtype=torch.float64)
    window = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    window = window / window.sum()
    impulses = F.pad(torch.eye(n, dtype=torch.float64)[:, None], (r, r), mode="reflect")  # [n, 1, n + 2r]
    return F.conv1d(impulses, window.view(1, 1, -1))[:, 0].to(dtype=dtype, device=device)  # row i: impulse i blurred


def training_ssim(
    pred: Tensor,  # [H, W, 3] in [0, 1]
    gt: Tensor,  # [H, W, 3] in [0, 1]
) -> Tensor:  # []
    """SSIM as nerfstudio's splatfacto trains with it (torchmetrics' default: 11 x 11 Gaussian
    window, sigma 1.5, reflect-padded image, mean over every pixel), computed as two matrix
    products per image instead of an 11 x 11 grouped convolution: the same value and gradient
    (tests/avatar/test_losses.py), 3x faster forward and backward at 128 px on CPU.

    Evaluation reports :func:`eavatar.metrics.image.ssim` (valid windows only), not this.
    """
    h, w = pred.shape[:2]
    if min(h, w) <= SSIM_WINDOW // 2:
        raise ValueError(f"training SSIM needs images larger than {SSIM_WINDOW // 2} pixels a side, got {tuple(pred.shape)}")
    x, y = pred.permute(2, 0, 1), gt.permute(2, 0, 1)  # [3, H, W]
    stats = torch.cat((x, y, x * x, y * y, x * y))  # [15, H, W]
    blurred = _window_matrix(h, pred.dtype, pred.device).T @ (stats @ _window_matrix(w, pred.dtype, pred.device))
    mu_x, mu_y, xx, yy, xy = blurred.view(5, 3, h, w).unbind(0)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = torch.clamp(xx - mu_xx, min=0.0)
    var_y = torch.clamp(yy - mu_yy, min=0.0)
    cov = xy - mu_xy
    ssim_map = ((2 * mu_xy + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mu_xx + mu_yy + SSIM_C1) * (var_x + var_y + SSIM_C2))
    return ssim_map.mean()


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
    losses = {"rgb": cfg.rgb_weight * ((1 - cfg.ssim_lambda) * l1 + cfg.ssim_lambda * (1 - training_ssim(pred, gt)))}
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
