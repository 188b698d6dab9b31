"""The ``"cpu"`` backend's compositing as compiled loops (numba): what makes CPU training and sliders fast.

Same image formation as :func:`eavatar.render.reference.composite` (the autograd reference, held
equal by tests/render/test_cpu_numba.py): Gaussians front to back, each pixel of its 3-sigma
box whose centre gets alpha >= 1/255, alpha capped at 0.999, and a pixel stops before the
Gaussian that would take its transmittance to 1e-4.

- Viewing (no autograd): nothing needs keeping per pair, so one walk over the boxes (about
  2 M pixel visits for a 256 px avatar) blends straight into the image.
- Training: the tensor path materialises, sorts and scans every (Gaussian, pixel) pair with
  autograd, over a second a step at 256 px. Here the forward is the viewing walk that also
  records, per band of rows, which Gaussians each pixel blended, in depth order; a counting
  sort turns the records into per-pixel lists, and the backward walks each list back to front
  with the closed-form gradients of 3DGS (dC/dalpha_i = f_i T_i - S_i / (1 - alpha_i), S_i the
  colour blended behind i), pixels split across threads, each thread summing into its own
  gradient buffer. Only the pairs a pixel really blended are kept (a pixel stops at
  saturation): 43% of the pairs within reach on the demo avatar.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from eavatar.render.reference import ALPHA_MAX, ALPHA_MIN, T_MIN
from eavatar.render.projection import Projected


HALF, ONE = np.float32(0.5), np.float32(1.0)
A_MIN, A_MAX = np.float32(ALPHA_MIN), np.float32(ALPHA_MAX)  # float32, as the tensor path compares them


@numba.njit(cache=True, nogil=True, inline="always")
def _box(mx, my, radius, width, height):  # pragma: no cover - compiled
    """Pixel ranges [x0, x1) x [y0, y1) whose centres (+0.5) lie in the 3-sigma box, clipped to the image."""
    r = np.float32(radius)
    x0, x1 = max(math.ceil(mx - r - HALF), 0), min(math.floor(mx + r - HALF), width - 1) + 1
    y0, y1 = max(math.ceil(my - r - HALF), 0), min(math.floor(my + r - HALF), height - 1) + 1
    return x0, x1, y0, y1


@numba.njit(cache=True, nogil=True, inline="always")
def _sigma(dx, dy, a, b, c):  # pragma: no cover - compiled
    """Half the Mahalanobis distance of (dx, dy) under the conic (a, b, c), as eavatar.render.reference._sigma_abc."""
    return HALF * (a * dx * dx + c * dy * dy) + b * dx * dy


@numba.njit(cache=True, nogil=True, inline="always")
def _alpha_bound(o):  # pragma: no cover - compiled
    """An upper bound of sigma where alpha = o exp(-sigma) can still reach 1/255 (the exact test runs below it)."""
    return math.log(max(o / A_MIN, 1e-30)) * (1.0 + 1e-5) + 1e-5


@numba.njit(cache=True, nogil=True, inline="always")
def _row_span(dy, mx, a, b, c, bound, x0, x1):  # pragma: no cover - compiled
    """The pixels [s0, s1) of a row, within [x0, x1), whose centres can have sigma <= bound.

    sigma(dx) = a dx^2 / 2 + b dy dx + c dy^2 / 2 is a parabola in dx (a > 0): outside its roots
    no pixel of this row passes. Solved in float64 with slack on the bound and one pixel of
    margin each side, so rounding only ever widens the span; the exact per-pixel test decides.
    """
    a, b, c, dy = np.float64(a), np.float64(b), np.float64(c), np.float64(dy)
    if a <= 0.0:
        return x0, x1
    disc = (b * dy) ** 2 - a * (c * dy * dy - 2.0 * (bound * 1.001 + 1e-3))
    if disc < 0.0:
        return x0, x0
    root = math.sqrt(disc)
    s0 = max(x0, int(math.floor(mx + (-b * dy - root) / a - 0.5)) - 1)
    s1 = min(x1, int(math.ceil(mx + (-b * dy + root) / a - 0.5)) + 2)
    return s0, max(s0, s1)


@numba.njit(cache=True, parallel=True)
def _blend(order, means2d, conics, opacities, radii, features, width, height, bands, acc, acc_alpha, transmittance, used, rec_pixel, rec_gaussian, recorded):  # pragma: no cover - compiled
    """Every Gaussian front to back into the image, cut into ``bands`` bands of rows, one per thread.

    Records (training; ``rec_pixel`` [bands, capacity], empty when viewing): band b's blended
    (pixel, Gaussian) pairs in depth order, ``recorded[b]`` of them (counted past the capacity,
    so the caller can tell it overflowed), and ``used[p]``, how many Gaussians pixel p blended.
    ``transmittance`` [P] starts at 1 and ends as each pixel's final transmittance.
    """
    done = np.zeros(width * height, np.bool_)
    per_band = (height + bands - 1) // bands
    for band in numba.prange(bands):
        recorded[band] = _blend_rows(
            order, means2d, conics, opacities, radii, features, width, height, band * per_band, min(height, (band + 1) * per_band),
            transmittance, done, acc, acc_alpha, used, rec_pixel[band], rec_gaussian[band],
        )


@numba.njit(cache=True, nogil=True)
def _blend_rows(order, means2d, conics, opacities, radii, features, width, height, r0, r1, transmittance, done, acc, acc_alpha, used, rec_pixel, rec_gaussian):  # pragma: no cover - compiled
    record, capacity, count = len(used) > 0, len(rec_pixel), 0
    for g in order:
        mx, my = means2d[g, 0], means2d[g, 1]
        a, b, c, o = conics[g, 0], conics[g, 1], conics[g, 2], opacities[g]
        bound = _alpha_bound(o)
        x0, x1, y0, y1 = _box(mx, my, radii[g], width, height)
        y0, y1 = max(y0, r0), min(y1, r1)
        for py in range(y0, y1):
            dy = (np.float32(py) + HALF) - my
            s0, s1 = _row_span(dy, mx, a, b, c, bound, x0, x1)
            for px in range(s0, s1):
                p = py * width + px
                if done[p]:
                    continue
                dx = (np.float32(px) + HALF) - mx
                sigma = _sigma(dx, dy, a, b, c)
                if sigma < 0 or sigma > bound:
                    continue
                alpha = o * np.exp(-sigma)
                if alpha < A_MIN:
                    continue
                alpha = min(alpha, A_MAX)
                after = transmittance[p] * (ONE - alpha)
                if after <= T_MIN:
                    done[p] = True
                    continue
                weight = alpha * transmittance[p]
                for k in range(features.shape[1]):
                    acc[p, k] += weight * features[g, k]
                acc_alpha[p] += weight
                transmittance[p] = after
                if record:
                    if count < capacity:
                        rec_pixel[count], rec_gaussian[count] = p, g
                    count += 1
                    used[p] += 1
    return count


@numba.njit(cache=True, parallel=True)
def _pixel_lists(used, rec_pixel, rec_gaussian, recorded):  # pragma: no cover - compiled
    """Per pixel, the Gaussians it blended, front to back: (start [P + 1], ids [M]), a stable counting sort of the records."""
    start = np.zeros(len(used) + 1, np.int64)
    start[1:] = np.cumsum(used)
    ids = np.empty(start[-1], np.int32)
    cursor = start[:-1].copy()
    for band in numba.prange(len(recorded)):  # bands own disjoint pixels: no two threads share a cursor
        for k in range(recorded[band]):
            p = rec_pixel[band, k]
            ids[cursor[p]] = rec_gaussian[band, k]
            cursor[p] += 1
    return start, ids


@numba.njit(cache=True, parallel=True)
def _backward(start, ids, used, final_t, means2d, conics, opacities, features, width, d_acc, d_alpha, grads):  # pragma: no cover - compiled
    """grads [chunks, N, 6 + D]: d means2d (2), d conic (3), d opacity, d features (D), one buffer per chunk of pixels."""
    chunks, num, D = grads.shape[0], len(start) - 1, features.shape[1]
    per_chunk = (num + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        out = grads[chunk]
        behind = np.zeros(D, np.float64)
        for p in range(chunk * per_chunk, min(num, (chunk + 1) * per_chunk)):
            n = used[p]
            if n == 0:
                continue
            pxc, pyc = np.float32(p % width) + HALF, np.float32(p // width) + HALF
            t = np.float64(final_t[p])
            behind[:] = 0.0
            behind_alpha = 0.0
            for k in range(start[p] + n - 1, start[p] - 1, -1):
                g = ids[k]
                dx, dy = pxc - means2d[g, 0], pyc - means2d[g, 1]
                a, b, c = conics[g, 0], conics[g, 1], conics[g, 2]
                sigma = _sigma(dx, dy, a, b, c)
                falloff = np.exp(-sigma)
                raw = opacities[g] * falloff
                alpha = min(raw, A_MAX)
                t = t / (1.0 - alpha)  # transmittance in front of this Gaussian
                weight = alpha * t
                d_weight_alpha = d_alpha[p] * (t - behind_alpha / (1.0 - alpha))
                for d in range(D):
                    out[g, 6 + d] += weight * d_acc[p, d]
                    d_weight_alpha += d_acc[p, d] * (features[g, d] * t - behind[d] / (1.0 - alpha))
                    behind[d] += weight * features[g, d]
                behind_alpha += weight
                if raw >= A_MAX:  # the cap: no gradient through alpha, as torch.clamp_max
                    continue
                out[g, 5] += d_weight_alpha * falloff
                d_sigma = -d_weight_alpha * raw
                out[g, 0] -= d_sigma * (a * dx + b * dy)
                out[g, 1] -= d_sigma * (c * dy + b * dx)
                out[g, 2] += d_sigma * 0.5 * dx * dx
                out[g, 3] += d_sigma * dx * dy
                out[g, 4] += d_sigma * 0.5 * dy * dy


def _array(t: Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(dtype).numpy())


class _CompositeFunction(torch.autograd.Function):
    """Differentiable compositing of (means2d [N, 2], conics [N, 3], opacities [N], features [N, D])."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, order, radii, width, height):
        ctx.dtype = features.dtype if features.dtype == torch.float64 else torch.float32  # float64 for gradcheck
        m, cn, o, f = (_array(t, ctx.dtype) for t in (means2d, conics, opacities, features))
        acc, acc_alpha, final_t, used, start, ids = blend_with_lists(order.numpy(), m, cn, o, radii.numpy(), f, width, height)
        ctx.kernel_inputs = (start, ids, used, final_t, m, cn, o, f, width)
        return torch.from_numpy(acc).to(features.dtype), torch.from_numpy(acc_alpha).to(features.dtype)

    @staticmethod
    def backward(ctx, d_acc, d_alpha):
        start, ids, used, final_t, m, cn, o, f, width = ctx.kernel_inputs
        grads = np.zeros((numba.get_num_threads(), len(m), 6 + f.shape[1]), f.dtype)
        d_acc, d_alpha = _array(d_acc, ctx.dtype), _array(d_alpha, ctx.dtype)
        _backward(start, ids, used, final_t, m, cn, o, f, width, d_acc, d_alpha, grads)
        g = torch.from_numpy(grads.sum(0))
        return g[:, 0:2], g[:, 2:5], g[:, 5], g[:, 6:], None, None, None, None


def blend_with_lists(order, means2d, conics, opacities, radii, features, width, height, capacity: int | None = None):
    """The training forward on numpy arrays: (acc [P, D], alpha [P], final transmittance [P],
    used [P], start [P + 1], ids [M]): the image and, per pixel, the Gaussians it blended.

    Each band of rows records its pairs into ``capacity`` slots (default 32 a pixel: the demo
    avatar blends 13 on average; the pages never written are never touched); a band that
    needed more makes one re-run with room for exactly what it counted.
    """
    bands, num, dtype = numba.get_num_threads(), width * height, features.dtype
    per_band_pixels = -(-height // bands) * width
    capacity = 32 * per_band_pixels if capacity is None else capacity
    while True:
        acc, acc_alpha = np.zeros((num, features.shape[1]), dtype), np.zeros(num, dtype)
        final_t, used = np.ones(num, dtype), np.zeros(num, np.int32)
        rec_pixel, rec_gaussian = np.empty((bands, capacity), np.int32), np.empty((bands, capacity), np.int32)
        recorded = np.zeros(bands, np.int64)
        _blend(order, means2d, conics, opacities, radii, features, width, height, bands, acc, acc_alpha, final_t, used, rec_pixel, rec_gaussian, recorded)
        if recorded.max() <= capacity:
            start, ids = _pixel_lists(used, rec_pixel, rec_gaussian, recorded)
            return acc, acc_alpha, final_t, used, start, ids
        capacity = int(recorded.max())


def composite_numba(proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """:func:`eavatar.render.reference.composite` on CPU tensors, compiled: (features [H, W, D], alpha [H, W, 1]).

    Differentiable in means2d, conics, opacities and features when any of them needs a gradient.
    """
    inputs = (proj.means2d, proj.conics, opacities, features)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in inputs)):
        return _composite_view(proj, opacities, features, width, height)
    visible = torch.nonzero(proj.radii > 0).squeeze(1)
    order = visible[torch.argsort(proj.depths[visible].detach(), stable=True)]
    acc, alpha = _CompositeFunction.apply(proj.means2d[0], proj.conics, opacities, features, order, proj.radii, width, height)
    return acc.reshape(height, width, -1), alpha.reshape(height, width, 1)


@torch.no_grad()
def _composite_view(proj: Projected, opacities: Tensor, features: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """The viewing path: one walk over the boxes, nothing recorded."""
    visible = torch.nonzero(proj.radii > 0).squeeze(1)
    order = visible[torch.argsort(proj.depths[visible], stable=True)]
    D, num, bands = features.shape[-1], width * height, numba.get_num_threads()
    acc = np.zeros((num, D), np.float32)
    acc_alpha, transmittance = np.zeros(num, np.float32), np.ones(num, np.float32)
    nothing = np.zeros((bands, 0), np.int32)
    _blend(
        order.numpy(), _array(proj.means2d[0]), _array(proj.conics), _array(opacities), proj.radii.numpy(), _array(features), width, height,
        bands, acc, acc_alpha, transmittance, np.zeros(0, np.int32), nothing, nothing, np.zeros(bands, np.int64),
    )
    out, alpha = torch.from_numpy(acc).to(features.dtype), torch.from_numpy(acc_alpha).to(features.dtype)
    return out.reshape(height, width, D), alpha.reshape(height, width, 1)
