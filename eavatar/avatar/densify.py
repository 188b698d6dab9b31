"""Densification and pruning of the canonical Gaussians, on gsplat's 3DGS strategy.

gsplat's ``DefaultStrategy`` is plain PyTorch on parameters and optimiser state, so it runs on
the CPU as well; this module feeds it the screen-space gradients of our renders and adds a
cap on the number of Gaussians so a CPU step stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy

from eavatar.render import RenderOutput


@dataclass
class DensifyConfig:
    """The 3DGS grow/prune schedule (the paper does not describe its own)."""

    enabled: bool = True
    """Grow and prune at all."""
    grow_grad2d: float = 0.0002
    """Mean screen-space gradient above which a Gaussian is cloned or split (3DGS value)."""
    grow_scale3d: float = 0.01
    """Scale, relative to the head radius, separating clone (below) from split (above)."""
    prune_opa: float = 0.005
    """Opacity under which a Gaussian is removed."""
    prune_scale3d: float = 0.1
    """Scale, relative to the head radius, above which a Gaussian is removed."""
    refine_start: int = 500
    """First step that grows or prunes."""
    refine_stop: int = 15_000
    """Last step that grows or prunes."""
    refine_every: int = 100
    """Steps between refinements."""
    reset_every: int = 3000
    """Steps between opacity resets."""
    max_gaussians: int = 40_000
    """No growth beyond this many Gaussians (bounds the CPU step time)."""


class CappedStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy that stops growing at ``max_gaussians``."""

    max_gaussians: int = 40_000

    def _grow_gs(self, params, optimizers, state, step):
        if len(params["means"]) >= self.max_gaussians:
            return 0, 0
        return super()._grow_gs(params, optimizers, state, step)


class Densifier:
    """Owns the strategy and its state; call ``step`` after every backward pass."""

    def __init__(self, cfg: DensifyConfig, head_radius: float):
        self.cfg = cfg
        self.strategy = CappedStrategy(
            prune_opa=cfg.prune_opa,
            grow_grad2d=cfg.grow_grad2d,
            grow_scale3d=cfg.grow_scale3d,
            prune_scale3d=cfg.prune_scale3d,
            refine_start_iter=cfg.refine_start,
            refine_stop_iter=cfg.refine_stop,
            refine_every=cfg.refine_every,
            reset_every=cfg.reset_every,
        )
        self.strategy.max_gaussians = cfg.max_gaussians
        self.state: dict[str, Any] = self.strategy.initialize_state(scene_scale=head_radius)

    def step(self, params, optimizers: dict[str, torch.optim.Optimizer], step: int, render: RenderOutput) -> None:
        """Accumulate this render's screen-space gradients and grow/prune on schedule."""
        if not self.cfg.enabled or render.means2d.grad is None:
            return
        h, w = render.rgb.shape[:2]
        info = {
            "means2d": render.means2d,  # [1, N, 2], .grad filled by backward
            "radii": render.radii,  # [1, N]
            "width": w,
            "height": h,
            "n_cameras": 1,
            "gaussian_ids": None,
        }
        self.strategy.step_post_backward(params, optimizers, self.state, step, info, packed=False)
