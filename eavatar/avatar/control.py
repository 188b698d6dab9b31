"""Sparse expression control (EAvatar, Sec. "key Gaussians"): control Gaussians move their neighbours.

Control Gaussians are those that expressions move by more than ``tau``; every other Gaussian
within ``radius`` of control Gaussians is additionally moved by a Gaussian-kernel blend of
their expression motion. The paper normalises the weights ("normalised"):

    x'_j = x_j + sum_{i in C_j} w_ij dx_i,   w_ij = k_ij / sum_k k_kj,   k_ij = exp(-|x_j - x_i|^2 / sigma^2)

so a Gaussian just inside the radius of one control Gaussian moves with it in full and one
just outside not at all, and skin beside a moving lip or brow is dragged along entirely. The
default ("falloff") divides by max(1, sum_k k_kj) instead: the same blend where control
Gaussians crowd (their weights sum past one), and where they do not, a motion that fades with
distance, to exp(-(r / sigma)^2) at the radius (docs/method.md).

Which Gaussians control, and what dx_i is (``select``): the paper takes, per frame, those with
|f_exp_def(theta)| > tau and propagates that whole displacement ("frame"). The branch also
learns a displacement that is the same at every code, and a Gaussian that crosses tau between
two codes drags its neighbours by all of it at once, so the frame-to-frame set makes the
expression-to-position map jump. The default ("expression") selects once per set of weights
the Gaussians that some coefficient at full strength moves more than tau away from the
neutral code, and propagates their motion from neutral, f(theta) - f(0): fixed
neighbourhoods, no jumps, and nothing added at the neutral code (docs/method.md).

Units: all three lengths are in head radii (the avatar's ``radius`` buffer), so one value
serves every subject; the paper leaves tau's units unstated (docs/method.md). Distances are
measured between canonical centres, so the neighbourhoods do not flicker with the expression.
Neighbours come from a uniform grid of cells at least ``radius`` wide (compiled, rebuilt every
frame in well under a millisecond: the canonical centres are trained, so they move): a point's
neighbours lie in its own and the 26 adjacent cells, so no N x N matrix is ever built. For
points that do not move between frames (an avatar being edited), :class:`ControlKernel`
precomputes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree
from torch import Tensor


@dataclass
class SparseControlConfig:
    """Control selection and propagation (all lengths in head radii)."""

    enabled: bool = True
    """Propagate control displacements to neighbours (off: the GHA-like baseline, docs/ablation.md)."""
    select: Literal["expression", "frame"] = "expression"
    """expression: control Gaussians are those some coefficient at 1 moves more than tau from the
    neutral code (one set for all frames), propagating f(theta) - f(0); frame: the paper's
    per-frame |f_exp_def(theta)| > tau, propagating f(theta) (its set changes with the code and
    its neighbours jump; docs/method.md)."""
    tau: float = 0.05
    """Control threshold in head radii (paper: 0.3, units unstated)."""
    radius: float = 0.05
    """Neighbourhood r of a control Gaussian (paper: open)."""
    sigma: float = 0.025
    """Kernel width sigma of the blend weights (paper: open)."""
    blend: Literal["falloff", "normalised"] = "falloff"
    """falloff: weights k_ij / max(1, sum of k over the controls near j), a motion that fades with
    the distance where few control Gaussians are near; normalised: the paper's k_ij / sum k,
    full motion anywhere within the radius (docs/method.md)."""
    refresh_every: int = 10
    """Training (select=expression): steps between recomputations of the control set, which
    costs one pass of the position trunk per coefficient; also after every densification."""

    @property
    def falloff(self) -> bool:
        """The ``falloff`` argument of :func:`propagate` and :class:`ControlKernel` for this blend."""
        return self.blend == "falloff"


def control_mask(displacement: Tensor, tau: float) -> Tensor:
    """[N] bool: |dx_i| > tau (strictly)."""
    return displacement.detach().norm(dim=-1) > tau


#: Cells per axis at most: a radius far below the cloud's size gets wider cells (still correct, more distance tests).
GRID_CELLS = 64


def neighbour_pairs(points: Tensor, is_control: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """(j, i) index pairs: non-control j within ``radius`` of control i (|x_j - x_i| <= radius)."""
    device = points.device
    mask = is_control.cpu().numpy()
    if mask.all() or not mask.any():
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    j, i = _grid_pairs(np.ascontiguousarray(points.detach().cpu().numpy(), dtype=np.float64), mask, float(radius))
    return torch.from_numpy(j).to(device), torch.from_numpy(i).to(device)


@numba.njit(cache=True, nogil=True)
def _grid_pairs(points, is_control, radius):  # pragma: no cover - compiled
    """:func:`neighbour_pairs` on float64 [N, 3] points: control points bucketed into cells at
    least ``radius`` wide (a counting sort), each free point tested against the control points
    of its 27 cells, free point by free point."""
    n = points.shape[0]
    lo, hi = points[0].copy(), points[0].copy()
    for p in range(n):
        for k in range(3):
            lo[k], hi[k] = min(lo[k], points[p, k]), max(hi[k], points[p, k])
    cell = max(radius, (hi - lo).max() / GRID_CELLS, 1e-12)
    dims = np.empty(3, np.int64)
    for k in range(3):
        dims[k] = int((hi[k] - lo[k]) / cell) + 1
    coords = np.empty((n, 3), np.int64)
    for p in range(n):
        for k in range(3):
            coords[p, k] = min(int((points[p, k] - lo[k]) / cell), dims[k] - 1)
    start = np.zeros(dims[0] * dims[1] * dims[2] + 1, np.int64)
    for p in range(n):
        if is_control[p]:
            start[(coords[p, 0] * dims[1] + coords[p, 1]) * dims[2] + coords[p, 2] + 1] += 1
    start = np.cumsum(start)
    members, cursor = np.empty(start[-1], np.int64), start[:-1].copy()
    for p in range(n):
        if is_control[p]:
            key = (coords[p, 0] * dims[1] + coords[p, 1]) * dims[2] + coords[p, 2]
            members[cursor[key]] = p
            cursor[key] += 1
    r2 = radius * radius
    count = 0
    out_j, out_i = np.empty(4 * n, np.int64), np.empty(4 * n, np.int64)
    for j in range(n):
        if is_control[j]:
            continue
        pj = points[j]
        for x in range(max(coords[j, 0] - 1, 0), min(coords[j, 0] + 2, dims[0])):
            gx = max(lo[0] + x * cell - pj[0], pj[0] - (lo[0] + (x + 1) * cell), 0.0)  # distance to the column's slab
            for y in range(max(coords[j, 1] - 1, 0), min(coords[j, 1] + 2, dims[1])):
                gy = max(lo[1] + y * cell - pj[1], pj[1] - (lo[1] + (y + 1) * cell), 0.0)
                reach = r2 - gx * gx - gy * gy
                if reach < 0.0:  # no point of this column of cells is within the radius
                    continue
                reach = math.sqrt(reach) * (1 + 1e-9) + 1e-12  # widened: rounding may only add cells, the exact test decides
                z0 = max(int((pj[2] - reach - lo[2]) / cell), coords[j, 2] - 1, 0)
                z1 = min(int((pj[2] + reach - lo[2]) / cell) + 1, coords[j, 2] + 2, dims[2])
                row = (x * dims[1] + y) * dims[2]
                for m in range(start[row + z0], start[row + max(z0, z1)]):  # the z-adjacent cells are contiguous
                    i = members[m]
                    dx, dy, dz = pj[0] - points[i, 0], pj[1] - points[i, 1], pj[2] - points[i, 2]
                    if dx * dx + dy * dy + dz * dz <= r2:
                        if count == len(out_j):
                            out_j, out_i = _grown(out_j, count), _grown(out_i, count)
                        out_j[count], out_i[count] = j, i
                        count += 1
    return out_j[:count], out_i[:count]


@numba.njit(cache=True, nogil=True)
def _grown(a, count):  # pragma: no cover - compiled
    bigger = np.empty(2 * len(a), a.dtype)
    bigger[:count] = a[:count]
    return bigger


def propagate(
    points: Tensor, displacement: Tensor, is_control: Tensor, radius: float, sigma: float, source: Tensor | None = None, *, falloff: bool
) -> Tensor:
    """Displacements [N, 3] after control Gaussians moved their neighbours by a blend of ``source``
    [N, 3] (what control Gaussians propagate; default ``displacement`` itself); ``falloff``: the
    weights divided by max(1, their sum) instead of their sum (:class:`SparseControlConfig`).

    Differentiable in ``displacement`` and ``source`` (gradients reach the control Gaussians'
    MLP outputs through the blend) and in ``points``; control rows and rows reached by no
    control Gaussian are returned unchanged.
    """
    j, i = neighbour_pairs(points, is_control, radius)
    if len(j) == 0:
        return displacement
    n = points.shape[0]
    logits = -((points.index_select(0, j) - points.index_select(0, i)) ** 2).sum(-1) / sigma**2
    if falloff:  # logits >= -(radius / sigma)^2: no shift needed
        w = torch.exp(logits)
        w = w / torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, j, w).clamp(min=1.0).index_select(0, j)
    else:  # shifted by each row's largest logit, so a far, lone control keeps weight 1
        peak = torch.full((n,), -torch.inf, dtype=logits.dtype, device=logits.device).scatter_reduce(0, j, logits.detach(), "amax")
        w = torch.exp(logits - peak.index_select(0, j))
        w = w / torch.zeros(n, dtype=w.dtype, device=w.device).index_add(0, j, w).index_select(0, j)
    source = displacement if source is None else source
    return displacement + torch.zeros_like(displacement).index_add(0, j, w[:, None] * source.index_select(0, i))


class ControlKernel:
    """:func:`propagate` for points that do not move (a trained avatar's canonical centres).

    The kernel weights exp(-|x_j - x_i|^2 / sigma^2) of every pair within ``radius`` are fixed,
    so they are computed once into a sparse matrix K (float64: no shift by the largest weight
    is needed down to exp(-700)); a frame is then one sparse product, K [c * dx, c] with c the
    control indicator (sums of weighted displacements and of weights), instead of a KD-tree search. Memory: the pairs within ``radius``
    (about 1.6 M for 20,000 Gaussians at the default radius).
    """

    def __init__(self, points: Tensor, radius: float, sigma: float, *, falloff: bool):
        self.falloff = falloff
        pts = points.detach().cpu().numpy().astype(np.float64)
        a, b = cKDTree(pts).query_pairs(radius, output_type="ndarray").T
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        weights = np.exp(-((pts[rows] - pts[cols]) ** 2).sum(-1) / sigma**2)
        self.kernel = csr_matrix((weights, (rows, cols)), shape=(len(pts), len(pts)))

    def propagate(self, displacement: Tensor, is_control: Tensor, source: Tensor | None = None) -> Tensor:
        """:func:`propagate` (no gradients) of ``displacement`` [N, 3] for this kernel's points."""
        control = is_control.cpu().numpy()
        dx = displacement.detach().cpu().numpy().astype(np.float64)
        src = dx if source is None else source.detach().cpu().numpy().astype(np.float64)
        summed = self.kernel @ np.concatenate([src * control[:, None], control[:, None]], axis=1)  # one pass: [sum w dx, sum w]
        reached = ~control & (summed[:, 3] > 0)
        total = summed[reached, 3:]
        dx[reached] += summed[reached, :3] / (np.maximum(total, 1.0) if self.falloff else total)
        return torch.from_numpy(dx).to(displacement)
