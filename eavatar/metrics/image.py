"""Image-quality metrics: PSNR (optionally masked), SSIM and LPIPS.

Images are float tensors in [0, 1], channels last: [H, W, 3] for one frame or [B, H, W, 3]
for a batch. Batched metrics are computed per frame, then averaged over frames.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from eavatar.metrics.lpips import LPIPSUnavailable, load_lpips

SSIM_KERNEL_SIZE = 11
SSIM_SIGMA = 1.5


def _as_batch(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3]
    gt: Tensor,  # same shape as pred
) -> tuple[Tensor, Tensor]:  # [B, H, W, 3] each
    if pred.shape != gt.shape or pred.dim() not in (3, 4) or pred.shape[-1] != 3:
        raise ValueError(f"expected two [H, W, 3] or [B, H, W, 3] images, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if pred.dim() == 3:
        pred, gt = pred[None], gt[None]
    return pred.float(), gt.float()


def _as_mask(
    mask: Tensor,  # [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1]
    batch: Tensor,  # [B, H, W, 3]
) -> Tensor:  # [B, H, W, 1] float weights
    m = mask.to(device=batch.device, dtype=batch.dtype)
    if m.dim() >= 3 and m.shape[-1] == 1 and m.shape != batch.shape[:3]:
        m = m[..., 0]
    if m.dim() == 2:
        m = m.expand(batch.shape[0], -1, -1)
    if m.shape != batch.shape[:3]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match images of shape {tuple(batch.shape)}")
    return m[..., None]


def psnr(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3] in [0, 1]
    gt: Tensor,  # same shape as pred
    mask: Tensor | None = None,  # [H, W], [B, H, W] (optionally a trailing 1), bool or {0, 1}
) -> Tensor:  # []
    """Peak signal-to-noise ratio in dB (peak 1), per frame then averaged over frames.

    Args:
        pred: [H, W, 3] or [B, H, W, 3] images in [0, 1].
        gt: ground truth, same shape.
        mask: optional region; the mean squared error is then taken over the mask's pixels
            only (all three channels), so pixels outside it do not count.

    Returns:
        [] mean PSNR over frames (inf for a frame equal to its ground truth).

    >>> psnr(torch.zeros(4, 4, 3), torch.full((4, 4, 3), 0.1))  # tensor(20.)
    """
    pred, gt = _as_batch(pred, gt)
    err = (pred - gt) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        m = _as_mask(mask, pred)
        count = m.sum(dim=(1, 2, 3)) * 3
        if bool((count == 0).any()):
            raise ValueError("masked PSNR: the mask of at least one frame is empty")
        mse = (err * m).sum(dim=(1, 2, 3)) / count
    return (-10 * torch.log10(mse)).mean()


def ssim_map(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3] in [0, 1]
    gt: Tensor,  # same shape as pred
) -> Tensor:  # [B, H, W]
    """Per-pixel SSIM (Wang et al. 2004), averaged over the three channels; NaN on the border.

    Gaussian window of size 11 and sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1. A pixel whose
    window leaves the image (the 5-pixel border) is NaN, so a mean over any set of pixels is a
    ``nanmean``: over all of them it is :func:`ssim`, over a region's it is the region's SSIM.

    Returns:
        [B, H, W] SSIM of each pixel's 11x11 neighbourhood (1 where both images agree).

    >>> ssim_map(torch.rand(16, 16, 3), torch.rand(16, 16, 3)).shape  # torch.Size([1, 16, 16])
    """
    pred, gt = _as_batch(pred, gt)
    if min(pred.shape[1:3]) < SSIM_KERNEL_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_KERNEL_SIZE}x{SSIM_KERNEL_SIZE} pixels, got {tuple(pred.shape)}")
    _, full = structural_similarity_index_measure(
        pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2),
        gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_KERNEL_SIZE, data_range=1.0, return_full_image=True,
    )  # full: [B, 3, H, W]
    out = torch.full(pred.shape[:3], float("nan"), dtype=full.dtype, device=full.device)
    r = SSIM_KERNEL_SIZE // 2
    out[:, r:-r, r:-r] = full[:, :, r:-r, r:-r].mean(dim=1)
    return out


def ssim(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3] in [0, 1]
    gt: Tensor,  # same shape as pred
) -> Tensor:  # []
    """Structural similarity (Wang et al. 2004), per frame then averaged over frames.

    Gaussian window of size 11 and sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1. The SSIM map
    is averaged over the pixels whose window lies inside the image (a 5-pixel border is left
    out), as in Wang et al.'s reference code and scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
    torchmetrics' default (used by nerfstudio) also averages the border, computed on a
    reflected image; it differs by about 1e-3.

    Returns:
        [] mean SSIM over frames (1 for identical images).
    """
    r = SSIM_KERNEL_SIZE // 2
    return ssim_map(pred, gt)[:, r:-r, r:-r].mean()


def lpips(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3] in [0, 1]
    gt: Tensor,  # same shape as pred
    net: str = "alex",
) -> Tensor:  # []
    """LPIPS v0.1 distance (lower is better), per frame then averaged over frames.

    Differentiable; the model is loaded (once) on ``pred``'s device.

    Raises:
        LPIPSUnavailable: the weights are not installed; the message says how to install them.
    """
    pred, gt = _as_batch(pred, gt)
    model = load_lpips(net, pred.device)
    return model(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)).mean()


@torch.no_grad()
def image_metrics(
    pred: Tensor,  # [H, W, 3] or [B, H, W, 3] in [0, 1]
    gt: Tensor,  # same shape as pred
    mask: Tensor | None = None,  # [H, W] or [B, H, W], for a region PSNR
) -> dict[str, float | str | None]:
    """PSNR, SSIM and LPIPS (AlexNet) of a prediction, as plain numbers.

    ``pred`` is clamped to [0, 1] first, as writing it to an 8-bit image would. With a mask,
    "psnr" is the masked PSNR; SSIM and LPIPS are always over the whole image (composite
    both images on the same background before calling).

    Returns:
        {"psnr": float, "ssim": float, "lpips": float | None}; when the LPIPS weights are not
        available "lpips" is None and "lpips_unavailable" holds the reason (no stand-in value).
    """
    pred, gt = _as_batch(pred, gt)
    pred = pred.clamp(0, 1)
    out: dict[str, float | str | None] = {"psnr": float(psnr(pred, gt, mask)), "ssim": float(ssim(pred, gt))}
    try:
        out["lpips"] = float(lpips(pred, gt))
    except LPIPSUnavailable as e:
        out["lpips"] = None
        out["lpips_unavailable"] = str(e)
    return out


def contour_band(
    mask: Tensor,  # [H, W] or [H, W, 1] bool, the subject's foreground
    width: int = 2,
) -> Tensor:  # [H, W] bool
    """Pixels within ``width`` px of the mask's outline (dilated and not eroded): where a silhouette
    that is off by a pixel or two, or a matte's edge an avatar cannot learn, puts its error."""
    m = mask.reshape(mask.shape[0], mask.shape[1]).float()[None, None]
    k = 2 * width + 1
    dilated = torch.nn.functional.max_pool2d(m, k, stride=1, padding=width) > 0
    eroded = torch.nn.functional.max_pool2d(1.0 - m, k, stride=1, padding=width) == 0
    return (dilated & ~eroded)[0, 0]


def contour_errors(
    pred: Tensor,  # [H, W, 3] in [0, 1]
    gt: Tensor,  # [H, W, 3]
    mask: Tensor,  # [H, W] or [H, W, 1] bool
    width: int = 2,
) -> dict[str, float]:
    """{"sq_error": summed squared error of the frame, "sq_error_contour": the part of it in the
    ``contour_band``}; sums, so a split's share is pooled over its frames."""
    err = ((pred.clamp(0, 1) - gt.float()) ** 2).sum(dim=-1)
    return {"sq_error": float(err.sum()), "sq_error_contour": float(err[contour_band(mask, width).to(err.device)].sum())}
