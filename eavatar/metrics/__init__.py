"""Image metrics (PSNR, SSIM, LPIPS v0.1) with offline LPIPS weights; see docs/metrics.md.

The LPIPS *function* for [H, W, 3] images is ``eavatar.metrics.image.lpips``; it is not
re-exported here, so that ``eavatar.metrics.lpips`` stays the module (LPIPS, load_lpips, ...).
"""

from eavatar.metrics.image import image_metrics, psnr, ssim
from eavatar.metrics.lpips import LPIPS, LPIPSUnavailable, find_lpips_weights, load_lpips, load_lpips_checkpoint

__all__ = [
    "LPIPS",
    "LPIPSUnavailable",
    "find_lpips_weights",
    "image_metrics",
    "load_lpips",
    "load_lpips_checkpoint",
    "psnr",
    "ssim",
]
