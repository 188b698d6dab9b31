"""`rasterize`: the one entry point, three backends with one image formation.

- ``"gsplat"``: gsplat's CUDA kernels (CUDA tensors only).
- ``"cpu"``: compiled loops with their own backward (eavatar/render/cpu_numba.py), CPU tensors only.
- ``"reference"``: plain PyTorch with autograd (eavatar/render/reference.py), any device; slow,
  the one the others are tested against.

The default follows the tensors' device (gsplat on CUDA, cpu elsewhere); ``backend=`` or
:func:`use_backend` picks another, e.g. the reference around a whole training step. On CUDA
without gsplat's kernels (gsplat compiles them with nvcc; eavatar/render/cuda_build.py) the
default is the reference, with one warning.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Literal, Optional

import torch
from torch import Tensor

import eavatar.render.reference as reference
from eavatar.render.cpu_numba import composite_numba  # imported here, not on first use: numba's cache loading on a viewer's render thread once failed
from eavatar.render.camera import Camera
from eavatar.render.projection import project, sh_to_rgb

Backend = Literal["gsplat", "cpu", "reference"]
BACKENDS = ("gsplat", "cpu", "reference")
EPS2D = 0.3  # gsplat's default low-pass on the 2D covariance

_chosen: ContextVar[Optional[str]] = ContextVar("eavatar_render_backend", default=None)


@contextmanager
def use_backend(backend: Backend | None) -> Iterator[None]:
    """Rasterise with ``backend`` inside the block wherever no ``backend=`` is passed (None: by device).

    >>> with use_backend("reference"):
    ...     pass  # avatar.render(...), a training step, ...
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"use_backend: backend must be one of {BACKENDS} or None, got {backend!r}")
    token = _chosen.set(backend)
    try:
        yield
    finally:
        _chosen.reset(token)


def choose_backend(device: torch.device) -> str:
    """The backend used on ``device`` when none is passed: :func:`use_backend`'s, else gsplat on CUDA
    (the reference when gsplat's kernels are not available there, warned once), else cpu."""
    chosen = _chosen.get()
    if chosen:
        return chosen
    if device.type != "cuda":
        return "cpu"
    return "gsplat" if _gsplat_usable() else "reference"


_gsplat_fallback_warned = False


def _gsplat_usable() -> bool:
    """Whether gsplat's kernels run here (cached); the first time they do not, one warning says why and how to fix it."""
    global _gsplat_fallback_warned
    # imported here, not at the top: `python -m eavatar.render.cuda_build` must not find it imported by eavatar.render
    from eavatar.render.cuda_build import fix_hint, gsplat_kernels_available

    ok, reason = gsplat_kernels_available()
    if not ok and not _gsplat_fallback_warned:
        _gsplat_fallback_warned = True
        warnings.warn(
            f"gsplat's CUDA kernels are not available ({reason}); rasterising on CUDA with the slower "
            f"plain-PyTorch reference backend instead. Fix: {fix_hint()}.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ok


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
    backend: Backend | None = None,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = EPS2D,
) -> RenderOutput:
    """Render N 3D Gaussians: means [N, 3] world, quats [N, 4] wxyz (any norm), scales [N, 3] linear,
    opacities [N] in [0, 1], colors [N, 3] RGB or [N, K, 3] SH coefficients with ``sh_degree``.

    ``backend``: "gsplat", "cpu" or "reference" (module docstring); None chooses by device
    (:func:`choose_backend`). Tests hold the three equal in values and gradients.
    ``eps2d``: variance (px^2) of the screen-space low-pass added to every projected Gaussian.
    """
    _check_inputs(means, quats, scales, opacities, colors, sh_degree)
    backend = backend or choose_backend(means.device)
    if backend == "gsplat":
        out = _rasterize_gsplat(means, quats, scales, opacities, colors, camera, sh_degree, near, far, eps2d)
    elif backend in ("cpu", "reference"):
        if backend == "cpu" and means.is_cuda:
            raise RuntimeError("rasterize: the cpu backend needs CPU tensors; use backend='gsplat' or 'reference' on CUDA")
        out = _rasterize_tiles(means, quats, scales, opacities, colors, camera, sh_degree, near, far, eps2d, backend)
    else:
        raise ValueError(f"rasterize: backend must be one of {BACKENDS} or None, got {backend!r}")
    if background is not None:
        out.rgb = out.rgb + (1.0 - out.alpha) * background.to(out.rgb).reshape(1, 1, 3)
    return out


def _rasterize_tiles(means, quats, scales, opacities, colors, camera: Camera, sh_degree, near, far, eps2d: float, backend: str) -> RenderOutput:
    """The cpu and reference backends: our projection, then compiled or autograd compositing."""
    proj = project(means, quats, scales, camera.viewmat, camera.K, camera.width, camera.height, eps2d, near, far)
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    if sh_degree is not None:
        colors = sh_to_rgb(sh_degree, means - camera.camera_center, colors)
    features = torch.cat([colors, proj.depths[:, None]], -1)
    acc, alpha = _composite(backend, means, quats, scales, opacities, colors)(proj, opacities, features, camera.width, camera.height)
    depth = acc[..., 3:] / alpha.clamp(min=1e-10)
    return RenderOutput(acc[..., :3], alpha, depth, proj.means2d, proj.radii[None])


def _composite(backend: str, *inputs: Tensor):
    """cpu: the compiled loops; reference: autograd compositing, or its equal no-grad variant when
    nothing needs a gradient (tests/render/test_cpu_numba.py holds them equal)."""
    if backend == "cpu":
        return composite_numba
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return reference.composite
    return reference.composite_no_grad


def _rasterize_gsplat(means, quats, scales, opacities, colors, camera: Camera, sh_degree, near, far, eps2d: float) -> RenderOutput:
    from gsplat import rasterization

    if not means.is_cuda:
        raise RuntimeError("rasterize: the gsplat backend needs CUDA tensors; use backend='cpu' or 'reference' on CPU")
    from eavatar.render.cuda_build import fix_hint, gsplat_kernels_available

    ok, reason = gsplat_kernels_available()  # also points gsplat's build at nvcc before its first kernel call
    if not ok:
        raise RuntimeError(f"rasterize: gsplat's CUDA kernels are not available ({reason}); use backend='reference', or fix: {fix_hint()}")
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
        eps2d=eps2d,
        sh_degree=sh_degree,
        packed=False,
        render_mode="RGB+ED",
    )
    if info["means2d"].requires_grad:
        info["means2d"].retain_grad()
    return RenderOutput(render[0, ..., :3], alpha[0], render[0, ..., 3:], info["means2d"], info["radii"])
