"""Temporal flicker: how much more (or differently) a render changes between frames than the truth.

For consecutive instants t-1, t of one sequence seen by one camera,

    flicker_t = mean_pixels | (R_t - R_{t-1}) - (G_t - G_{t-1}) |

in 8-bit levels (x 255). It is 0 when the render changes exactly as the ground truth does,
whatever its static error, so it isolates jitter (neighbourhoods popping in and out of the
control set, Gaussians flipping) from blur or colour bias, which PSNR already measures.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def flicker(
    pred: Tensor,  # [T, H, W, 3] consecutive renders of one camera, in [0, 1]
    gt: Tensor,  # [T, H, W, 3] the matching ground truth
) -> Tensor:  # [T - 1]
    """Per-transition flicker in 8-bit levels; empty for fewer than two frames."""
    if pred.shape != gt.shape or pred.dim() != 4:
        raise ValueError(f"expected two [T, H, W, 3] stacks, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    d_pred = pred[1:].float() - pred[:-1].float()
    d_gt = gt[1:].float() - gt[:-1].float()
    return 255.0 * (d_pred - d_gt).abs().mean(dim=(1, 2, 3))


class FlickerMeter:
    """Mean flicker over a stream of frames fed in time order per (sequence, camera).

    Holds only the latest frame of each (sequence, camera), so a long test split never
    sits in memory; a pair counts only when its timesteps are consecutive.
    """

    def __init__(self) -> None:
        self.latest: dict[tuple[str, int], tuple[int, Tensor, Tensor]] = {}
        self.values: list[float] = []

    def add(self, sequence: str, camera: int, timestep: int, pred: Tensor, gt: Tensor) -> None:
        """pred, gt [H, W, 3]: one frame, after every earlier timestep of its (sequence, camera)."""
        key = (sequence, int(camera))
        prev = self.latest.get(key)
        if prev is not None and prev[0] >= timestep:
            raise ValueError(f"frames of sequence {sequence!r}, camera {camera} must come in time order ({prev[0]} then {timestep})")
        if prev is not None and prev[0] == timestep - 1:
            self.values.append(float(flicker(torch.stack([prev[1], pred]), torch.stack([prev[2], gt]))[0]))
        self.latest[key] = (int(timestep), pred.detach(), gt.detach())

    def mean(self) -> float | None:
        """Mean over all consecutive pairs seen; None when there were none."""
        return float(np.mean(self.values)) if self.values else None
