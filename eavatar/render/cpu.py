"""Sparse per-pixel alpha compositing in pure PyTorch: the CPU backend.

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

import torch
from torch import Tensor

from eavatar.render.projection import Projected

ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


def _sigma(dx: Tensor, dy: Tensor, conics: Tensor) -> Tensor:
    return 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy


def _packed(proj: Projected, opacities: Tensor) -> Tensor:  # [N, 6]: mean x, mean y, conic (3), opacity
    """One gather per pair instead of four."""
    return torch.cat([proj.means2d[0], proj.conics, opacities[:, None]], -1)


@torch.no_grad()
def pixel_pairs(proj: Projected, opacities: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(gaussian, pixel x, pixel y, pixel id) of every pair that passes the alpha floor, sorted by pixel then depth."""
    device = opacities.device
    visible = torch.nonzero(proj.radii > 0).squeeze(1)
    visible = visible[torch.argsort(proj.depths[visible].detach(), stable=True)]  # pairs are made front to back
    m = proj.means2d[0, visible].detach()
    r = proj.radii[visible].to(m.dtype)
    # pixels whose centre (x + 0.5) lies inside the 3-sigma box
    x0 = torch.ceil(m[:, 0] - r - 0.5).clamp(0, width).long()
    x1 = (torch.floor(m[:, 0] + r - 0.5).clamp(-1, width - 1) + 1).long()
    y0 = torch.ceil(m[:, 1] - r - 0.5).clamp(0, height).long()
    y1 = (torch.floor(m[:, 1] + r - 0.5).clamp(-1, height - 1) + 1).long()
    nx, ny = (x1 - x0).clamp(min=0), (y1 - y0).clamp(min=0)
    counts = nx * ny
    gauss = torch.repeat_interleave(visible, counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(start, counts)
    nx_rep = torch.repeat_interleave(nx, counts)
    px = torch.repeat_interleave(x0, counts) + local % nx_rep
    py = torch.repeat_interleave(y0, counts) + local // nx_rep
    g = _packed(proj, opacities).detach()[gauss]
    sigma = _sigma(px + 0.5 - g[:, 0], py + 0.5 - g[:, 1], g[:, 2:5])
    keep = (sigma >= 0) & (g[:, 5] * torch.exp(-sigma) >= ALPHA_MIN)
    gauss, px, py = gauss[keep], px[keep], py[keep]
    pixel = py * width + px
    order = torch.argsort(pixel, stable=True)  # stable: keeps the front-to-back order inside a pixel
    return gauss[order], px[order], py[order], pixel[order]


def composite(proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Front-to-back blending of ``features`` [N, D]: returns (accumulated features [H, W, D], alpha [H, W, 1])."""
    gauss, px, py, pixel = pixel_pairs(proj, opacities, width, height)
    g = _packed(proj, opacities)[gauss]
    sigma = _sigma(px + 0.5 - g[:, 0], py + 0.5 - g[:, 1], g[:, 2:5])
    alpha = torch.clamp_max(g[:, 5] * torch.exp(-sigma), ALPHA_MAX)
    log_keep = torch.log1p(-alpha).double()  # float64: the running sum spans every pair of the image
    running = torch.cumsum(log_keep, 0)
    per_pixel = torch.bincount(pixel, minlength=width * height)
    first = (torch.cumsum(per_pixel, 0) - per_pixel)[pixel]
    log_t_after = (running - (running[first] - log_keep[first])).to(alpha.dtype)  # within the pixel
    transmittance = torch.exp(log_t_after - log_keep.to(alpha.dtype))
    alive = log_t_after.detach() > math.log(T_MIN)  # a prefix of each pixel's list
    weights = alpha * transmittance * alive
    D = features.shape[-1]
    acc = torch.zeros(width * height, D, dtype=features.dtype, device=features.device)
    acc = acc.index_add(0, pixel, weights[:, None] * features[gauss])
    acc_alpha = torch.zeros(width * height, dtype=features.dtype, device=features.device).index_add(0, pixel, weights)
    return acc.reshape(height, width, D), acc_alpha.reshape(height, width, 1)
