"""`rasterize`: the one entry point; gsplat on CUDA tensors, the PyTorch tile backend elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor

from eavatar.render import cpu
from eavatar.render.camera import Camera
from eavatar.render.projection import project, sh_to_rgb

Backend = Literal["auto", "gsplat", "torch"]
EPS2D = 0.3  # gsplat's default low-pass on the 2D covariance


@dataclass
class RenderOutput:
    """One rendered view. ``means2d`` [1, N, 2] and ``radii`` [1, N] follow gsplat's layout so gsplat's
    densification strategies read them directly; ``means2d.grad`` is filled by backward."""

    rgb: Tensor  # [H, W, 3], background composited
    alpha: Tensor  # [H, W, 1]
    depth: Tensor  # [H, W, 1] expected depth (camera z), 0 where alpha = 0
    means2d: Tensor  # [1, N, 2]
    radii: Tensor  # [1, N] int32, 0 = not drawn


def _check_inputs(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor, sh_degree: Optional[int]) -> None:
    n = means.shape[0]
    expected = {"means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3)), "opacities": (opacities, (n,))}
    for name, (t, shape) in expected.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"rasterize: {name} must have shape {list(shape)}, got {list(t.shape)}")
    if sh_degree is None and tuple(colors.shape) != (n, 3):
        raise ValueError(f"rasterize: colors must be [N, 3] RGB (or [N, K, 3] SH with sh_degree), got {list(colors.shape)}")
    if sh_degree is not None and (colors.ndim != 3 or colors.shape[0] != n or colors.shape[2] != 3):
        raise ValueError(f"rasterize: SH colors must be [N, K, 3], got {list(colors.shape)}")


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    camera: Camera,
    background: Optional[Tensor] = None,
    sh_degree: Optional[int] = None,
    backend: Backend = "auto",
    near: float = 0.01,
    far: float = 1e10,
) -> RenderOutput:
    """Render N 3D Gaussians: means [N, 3] world, quats [N, 4] wxyz (any norm), scales [N, 3] linear,
    opacities [N] in [0, 1], colors [N, 3] RGB or [N, K, 3] SH coefficients with ``sh_degree``.

    ``backend="auto"`` uses gsplat's CUDA kernels for CUDA tensors and the PyTorch tile
    backend otherwise; both implement the same image formation (see eavatar.render.cpu).
    On CPU the tile backend runs as compiled loops with their own backward
    (eavatar.render.cpu_numba), held equal in values and gradients to the autograd path by tests.
    """
    _check_inputs(means, quats, scales, opacities, colors, sh_degree)
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "torch"
    if backend == "gsplat":
        out = _rasterize_gsplat(means, quats, scales, opacities, colors, camera, sh_degree, near, far)
    elif backend == "torch":
        out = _rasterize_torch(means, quats, scales, opacities, colors, camera, sh_degree, near, far)
    else:
        raise ValueError(f"rasterize: backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")
    if background is not None:
        out.rgb = out.rgb + (1.0 - out.alpha) * background.to(out.rgb).reshape(1, 1, 3)
    return out


def _rasterize_torch(means, quats, scales, opacities, colors, camera: Camera, sh_degree, near, far) -> RenderOutput:
    proj = project(means, quats, scales, camera.viewmat, camera.K, camera.width, camera.height, EPS2D, near, far)
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    if sh_degree is not None:
        colors = sh_to_rgb(sh_degree, means - camera.camera_center, colors)
    features = torch.cat([colors, proj.depths[:, None]], -1)
    acc, alpha = _composite(means, quats, scales, opacities, colors)(proj, opacities, features, camera.width, camera.height)
    depth = acc[..., 3:] / alpha.clamp(min=1e-10)
    return RenderOutput(acc[..., :3], alpha, depth, proj.means2d, proj.radii[None])


def _composite(*inputs: Tensor):
    """The compiled loops on CPU tensors (training and viewing); the tensor path for CUDA tensors
    forced onto this backend (the autograd reference, or its viewing variant)."""
    if not inputs[0].is_cuda:
        from eavatar.render.cpu_numba import composite_numba

        return composite_numba
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return cpu.composite
    return cpu.composite_no_grad


def _rasterize_gsplat(means, quats, scales, opacities, colors, camera: Camera, sh_degree, near, far) -> RenderOutput:
    from gsplat import rasterization

    if not means.is_cuda:
        raise RuntimeError("rasterize: the gsplat backend needs CUDA tensors; use backend='torch' on CPU")
    render, alpha, info = rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        camera.viewmat[None],
        camera.K[None],
        camera.width,
        camera.height,
        near_plane=near,
        far_plane=far,
        eps2d=EPS2D,
        sh_degree=sh_degree,
        packed=False,
        render_mode="RGB+ED",
    )
    if info["means2d"].requires_grad:
        info["means2d"].retain_grad()
    return RenderOutput(render[0, ..., :3], alpha[0], render[0, ..., 3:], info["means2d"], info["radii"])
