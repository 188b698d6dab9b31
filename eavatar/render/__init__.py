"""Gaussian rasterisation: one function, three backends (gsplat on CUDA, compiled CPU, PyTorch reference)."""

from eavatar.render.camera import Camera
from eavatar.render.rasterize import BACKENDS, RenderOutput, rasterize, use_backend

__all__ = ["BACKENDS", "Camera", "RenderOutput", "rasterize", "use_backend"]
