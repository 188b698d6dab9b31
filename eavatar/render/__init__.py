"""Gaussian rasterisation: one function, a gsplat (CUDA) backend and a pure-PyTorch CPU backend."""

from eavatar.render.camera import Camera
from eavatar.render.rasterize import RenderOutput, rasterize

__all__ = ["Camera", "RenderOutput", "rasterize"]
