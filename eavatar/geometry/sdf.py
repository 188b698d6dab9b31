"""The canonical head as a neural SDF: f_sdf(x) -> (signed distance, feature)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from eavatar.avatar.generator import mlp, positional_encoding


@dataclass
class SDFConfig:
    """Size of f_sdf (the paper gives none)."""

    hidden_dim: int = 64
    """Width of each hidden layer."""
    num_layers: int = 4
    """Hidden layers."""
    pos_frequencies: int = 4
    """Sinusoidal encoding octaves of the normalised position (few: a smooth head, not texture)."""
    feature_dim: int = 16
    """Length of the feature vector the colour and deformation heads read (paper: open)."""
    init_steps: int = 300
    """Adam steps fitting f_sdf to a sphere at the start (geometric initialisation)."""


class SDFNetwork(nn.Module):
    """f_sdf over head space; inputs are normalised by the grid's centre and half extent.

    The distance is predicted in units of the half extent and returned in head-space units,
    so one network size fits any subject scale.
    """

    def __init__(self, cfg: SDFConfig, center: Tensor, half_extent: float):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).reshape(3))
        self.register_buffer("half_extent", torch.tensor(float(half_extent)))
        self.net = mlp(3 + 6 * cfg.pos_frequencies, cfg.hidden_dim, cfg.num_layers, 1 + cfg.feature_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [N, 3] head space -> sdf [N] (head-space units, negative inside), feature [N, F]."""
        out = self.net(positional_encoding((x - self.center) / self.half_extent, self.cfg.pos_frequencies))
        return out[:, 0] * self.half_extent, out[:, 1:]

    def fit_sphere(self, center: Tensor, radius: float, steps: int | None = None, seed: int = 0) -> float:
        """Fit the SDF of a sphere by regression on random points in the grid box; returns the final error.

        Starting from a closed surface of the right size is what DMTet needs: a random MLP's
        zero set is empty or noise, and marching tets would find nothing to optimise.
        """
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        center = torch.as_tensor(center, dtype=torch.float32).reshape(1, 3)
        err = torch.tensor(float("nan"))
        for _ in range(self.cfg.init_steps if steps is None else steps):
            x = self.center + (2 * torch.rand(2048, 3, generator=gen) - 1) * self.half_extent
            target = (x - center).norm(dim=-1) - radius
            err = ((self(x)[0] - target) / self.half_extent).abs().mean()
            opt.zero_grad()
            err.backward()
            opt.step()
        return float(err.detach())
