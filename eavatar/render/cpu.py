"""Tile-based alpha compositing in pure PyTorch: the CPU backend.

gsplat's own PyTorch path still needs CUDA for tile intersection, so this backend does
the whole pipeline with autograd: Gaussians are binned into 16x16 tiles by their 3-sigma
box (as gsplat bins them), sorted by depth, and each batch of tiles is composited as a
dense [tiles, pixels, gaussians] block. Compositing follows gsplat 1.4's kernel: pixel
centres at +0.5, alpha = min(0.999, o * exp(-sigma)), contributions under 1/255 skipped,
and a pixel stops before the Gaussian that would take its transmittance to 1e-4.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eavatar.render.projection import Projected

TILE_SIZE = 16
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
BLOCK_ELEMENTS = 2_000_000  # pixels x Gaussians per compositing block; bounds autograd memory


def tile_intersections(proj: Projected, width: int, height: int, tile_size: int = TILE_SIZE) -> tuple[Tensor, Tensor]:
    """(tile id, gaussian id) pairs, sorted by tile then front-to-back depth."""
    with torch.no_grad():
        tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
        visible = torch.nonzero(proj.radii > 0).squeeze(1)
        m = proj.means2d[0, visible]
        r = proj.radii[visible].to(m.dtype)
        x0 = torch.floor((m[:, 0] - r) / tile_size).clamp(0, tiles_x).long()
        x1 = torch.ceil((m[:, 0] + r) / tile_size).clamp(0, tiles_x).long()
        y0 = torch.floor((m[:, 1] - r) / tile_size).clamp(0, tiles_y).long()
        y1 = torch.ceil((m[:, 1] + r) / tile_size).clamp(0, tiles_y).long()
        nx, ny = x1 - x0, y1 - y0
        counts = nx * ny
        gauss = torch.repeat_interleave(visible, counts)
        # position of each pair inside its Gaussian's tile box
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(int(counts.sum()), device=m.device) - torch.repeat_interleave(start, counts)
        nx_rep, x0_rep, y0_rep = (torch.repeat_interleave(v, counts) for v in (nx, x0, y0))
        tile = (y0_rep + local // nx_rep) * tiles_x + x0_rep + local % nx_rep
        order = torch.argsort(proj.depths[gauss].detach(), stable=True)
        tile, gauss = tile[order], gauss[order]
        order = torch.argsort(tile, stable=True)
        return tile[order], gauss[order]


def composite(
    proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int, tile_size: int = TILE_SIZE
) -> tuple[Tensor, Tensor]:
    """Front-to-back blending of ``features`` [N, D]: returns (accumulated features [H, W, D], alpha [H, W, 1])."""
    device, dtype = features.device, features.dtype
    D = features.shape[-1]
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles = tiles_x * tiles_y
    P = tile_size * tile_size
    tile_ids, gauss_ids = tile_intersections(proj, width, height, tile_size)
    counts = torch.bincount(tile_ids, minlength=n_tiles)
    offsets = torch.cumsum(counts, 0) - counts

    out_feat = torch.zeros(n_tiles, P, D, dtype=dtype, device=device)
    out_alpha = torch.zeros(n_tiles, P, dtype=dtype, device=device)
    # Sentinel Gaussian N: zero opacity, pads short tiles inside a block.
    N = opacities.shape[0]
    means2d = torch.cat([proj.means2d[0], torch.zeros(1, 2, dtype=dtype, device=device)])
    conics = torch.cat([proj.conics, torch.zeros(1, 3, dtype=dtype, device=device)])
    opac = torch.cat([opacities, torch.zeros(1, dtype=dtype, device=device)])
    feats = torch.cat([features, torch.zeros(1, D, dtype=dtype, device=device)])

    py, px = torch.meshgrid(torch.arange(tile_size, device=device), torch.arange(tile_size, device=device), indexing="ij")
    local_xy = torch.stack([px.reshape(-1), py.reshape(-1)], -1).to(dtype) + 0.5  # [P, 2] pixel centres
    tile_origin = torch.stack(
        [torch.arange(n_tiles, device=device) % tiles_x, torch.arange(n_tiles, device=device) // tiles_x], -1
    ).to(dtype) * tile_size  # [T, 2]

    busy = torch.nonzero(counts).squeeze(1)
    busy = busy[torch.argsort(counts[busy])]  # similar lengths share a block: less padding
    busy_counts = counts[busy].tolist()
    i = 0
    while i < len(busy_counts):
        k_max = busy_counts[i]
        j = i + 1
        while j < len(busy_counts) and (j + 1 - i) * P * busy_counts[j] <= BLOCK_ELEMENTS:
            j += 1
        k_max = busy_counts[j - 1]
        tiles = busy[i:j]
        slot = torch.arange(k_max, device=device)
        idx = offsets[tiles, None] + slot  # [B, K]
        valid = slot < counts[tiles, None]
        g = torch.where(valid, gauss_ids[idx.clamp(max=len(gauss_ids) - 1)], torch.full_like(idx, N))
        pix = tile_origin[tiles, None, :] + local_xy  # [B, P, 2]
        d = pix[:, :, None, :] - means2d[g][:, None, :, :]  # [B, P, K, 2]
        con = conics[g][:, None]  # [B, 1, K, 3]
        sigma = 0.5 * (con[..., 0] * d[..., 0] ** 2 + con[..., 2] * d[..., 1] ** 2) + con[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp_max(opac[g][:, None] * torch.exp(-sigma), ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
        log_keep = torch.log1p(-alpha)
        log_t_after = torch.cumsum(log_keep, -1)
        transmittance = torch.exp(log_t_after - log_keep)  # before this Gaussian
        alive = log_t_after.detach() > math.log(T_MIN)  # prefix: stops before T would reach 1e-4
        weights = alpha * transmittance * alive
        out_feat = out_feat.index_put((tiles,), torch.einsum("bpk,bkd->bpd", weights, feats[g]))
        out_alpha = out_alpha.index_put((tiles,), weights.sum(-1))
        i = j

    def untile(x: Tensor) -> Tensor:  # [T, P, C] -> [H, W, C]
        C = x.shape[-1]
        x = x.reshape(tiles_y, tiles_x, tile_size, tile_size, C).permute(0, 2, 1, 3, 4)
        return x.reshape(tiles_y * tile_size, tiles_x * tile_size, C)[:height, :width]

    return untile(out_feat), untile(out_alpha[..., None])
