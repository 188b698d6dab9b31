"""Sparse per-pixel alpha compositing in plain PyTorch: the ``"reference"`` backend, on any device.

gsplat's own PyTorch path still needs CUDA for tile intersection, so this backend does
the whole pipeline with autograd, sparsely: every Gaussian is paired with the pixels of
its 3-sigma box, pairs under gsplat's 1/255 alpha floor are dropped, the rest are sorted
by (pixel, depth) and blended with a segmented cumulative sum of log-transmittance. The
blending is gsplat 1.4's: pixel centres at +0.5, alpha = min(0.999, o * exp(-sigma)), and
a pixel stops before the Gaussian that would take its transmittance to 1e-4. (gsplat's
kernel also lets a Gaussian reach the rest of the 16x16 tiles its box touches; there its
alpha is below 0.011 * opacity, so the two backends differ by at most that at footprint
edges.) Work is proportional to the covered pixels, not to tiles x Gaussians.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from eavatar.render.projection import Projected

ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


def _sigma(dx: Tensor, dy: Tensor, conics: Tensor) -> Tensor:
    return _sigma_abc(dx, dy, conics[:, 0], conics[:, 1], conics[:, 2])


def _sigma_abc(dx: Tensor, dy: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Half the Mahalanobis distance of (dx, dy) under the conic (a, b, c)."""
    return 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy


def _packed(proj: Projected, opacities: Tensor) -> Tensor:  # [N, 6]: mean x, mean y, conic (3), opacity
    """One gather per pair instead of four."""
    return torch.cat([proj.means2d[0], proj.conics, opacities[:, None]], -1)


def stable_pixel_order(pixel: Tensor, num_pixels: int) -> Tensor:  # [M] int -> [M] int64 permutation
    """``argsort(pixel, stable=True)``, as an LSD radix sort on 16-bit digits (numpy's stable sort of
    uint16 is a counting sort): about 10x faster than torch's merge sort for the millions of pairs
    of a 256 px image, and the same permutation (a stable sort is unique)."""
    if pixel.is_cuda:
        return torch.argsort(pixel, stable=True)
    ids = pixel.numpy()
    order = None
    for shift in range(0, max(1, (num_pixels - 1).bit_length()), 16):
        digit = (ids >> shift).astype(np.uint16)  # astype keeps the low 16 bits
        order = np.argsort(digit, kind="stable") if order is None else order[np.argsort(digit[order], kind="stable")]
    return torch.from_numpy(order.astype(np.int64))


@torch.no_grad()
def pixel_pairs(proj: Projected, opacities: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor]:
    """(gaussian, pixel id, alpha) of every pair that passes the alpha floor, sorted by pixel then depth.

    Per-Gaussian values are expanded to pairs with ``repeat_interleave`` from contiguous columns,
    and pixel coordinates are int32: this is the hot loop of a CPU render.
    """
    visible = torch.nonzero(proj.radii > 0).squeeze(1)
    visible = visible[torch.argsort(proj.depths[visible].detach(), stable=True)]  # pairs are made front to back
    m = proj.means2d[0].detach().index_select(0, visible)
    r = proj.radii.index_select(0, visible).to(m.dtype)
    # pixels whose centre (x + 0.5) lies inside the 3-sigma box
    x0 = torch.ceil(m[:, 0] - r - 0.5).clamp(0, width).int()
    x1 = (torch.floor(m[:, 0] + r - 0.5).clamp(-1, width - 1) + 1).int()
    y0 = torch.ceil(m[:, 1] - r - 0.5).clamp(0, height).int()
    y1 = (torch.floor(m[:, 1] + r - 0.5).clamp(-1, height - 1) + 1).int()
    nx, ny = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
    counts = (nx * ny).long()

    def per_pair(t: Tensor) -> Tensor:  # [V] per visible Gaussian -> [M] per candidate pair
        return torch.repeat_interleave(t, counts)

    local = torch.arange(int(counts.sum()), dtype=torch.int32, device=m.device) - per_pair((torch.cumsum(counts, 0) - counts).int())
    nx_pair = per_pair(nx)
    row = local // nx_pair
    px, py = per_pair(x0) + (local - row * nx_pair), per_pair(y0) + row
    conics = proj.conics.detach().index_select(0, visible)
    sigma = _sigma_abc(px + per_pair(0.5 - m[:, 0]), py + per_pair(0.5 - m[:, 1]), *(per_pair(conics[:, k]) for k in range(3)))
    alpha = per_pair(opacities.detach().index_select(0, visible)) * torch.exp(-sigma)
    kept = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_MIN)).squeeze(1)
    pixel = (py * width + px).index_select(0, kept)
    order = stable_pixel_order(pixel, width * height).to(m.device)  # stable: keeps the front-to-back order inside a pixel
    kept = kept.index_select(0, order)
    return per_pair(visible).index_select(0, kept), pixel.index_select(0, order).long(), torch.clamp_max(alpha.index_select(0, kept), ALPHA_MAX)


def composite(proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Front-to-back blending of ``features`` [N, D]: returns (accumulated features [H, W, D], alpha [H, W, 1])."""
    gauss, pixel, _ = pixel_pairs(proj, opacities, width, height)
    g = _packed(proj, opacities)[gauss]
    sigma = _sigma((pixel % width) + 0.5 - g[:, 0], (pixel // width) + 0.5 - g[:, 1], g[:, 2:5])
    alpha = torch.clamp_max(g[:, 5] * torch.exp(-sigma), ALPHA_MAX)
    weights = _blend_weights(alpha, pixel, torch.bincount(pixel, minlength=width * height))
    D = features.shape[-1]
    acc = torch.zeros(width * height, D, dtype=features.dtype, device=features.device)
    acc = acc.index_add(0, pixel, weights[:, None] * features[gauss])
    acc_alpha = torch.zeros(width * height, dtype=features.dtype, device=features.device).index_add(0, pixel, weights)
    return acc.reshape(height, width, D), acc_alpha.reshape(height, width, 1)


def _blend_weights(alpha: Tensor, pixel: Tensor, per_pixel: Tensor) -> Tensor:  # [M], [M], [H*W] -> [M]
    """alpha_k T_k of each pair (pairs sorted by pixel, then front to back), 0 once T < T_MIN."""
    log_keep = torch.log1p(-alpha).double()  # float64: the running sum spans every pair of the image
    running = torch.cumsum(log_keep, 0)
    nonempty = per_pixel > 0
    first = (torch.cumsum(per_pixel, 0) - per_pixel)[nonempty]  # first pair of each drawn pixel
    before_pixel = torch.repeat_interleave((running - log_keep)[first], per_pixel[nonempty])
    log_t_after = (running - before_pixel).to(alpha.dtype)  # within the pixel
    transmittance = torch.exp(log_t_after - log_keep.to(alpha.dtype))
    alive = log_t_after.detach() > math.log(T_MIN)  # a prefix of each pixel's list
    return alpha * transmittance * alive


@torch.no_grad()
def composite_no_grad(proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """:func:`composite` for viewing (no autograd), about twice as fast: it reuses the pairs' alpha and sums
    each pixel's pairs with one sparse CSR product (pairs are already grouped by pixel) instead of index_add."""
    gauss, pixel, alpha = pixel_pairs(proj, opacities, width, height)
    per_pixel = torch.bincount(pixel, minlength=width * height)
    weights = _blend_weights(alpha, pixel, per_pixel)
    crow = torch.zeros(width * height + 1, dtype=torch.long, device=pixel.device)
    crow[1:] = torch.cumsum(per_pixel, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        blend = torch.sparse_csr_tensor(crow, gauss, weights, size=(width * height, features.shape[0]))
        acc = blend @ torch.cat([features, torch.ones_like(features[:, :1])], -1)
    D = features.shape[-1]
    return acc[:, :D].reshape(height, width, D), acc[:, D:].reshape(height, width, 1)
