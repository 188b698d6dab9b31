"""The one device choice: CUDA when present, else CPU, never a flag."""

from __future__ import annotations

import torch


def default_device() -> str:
    """"cuda" when a GPU is visible, else "cpu" (a string: torch and nerfstudio's MachineConfig both take it).

    >>> default_device() in ("cuda", "cpu")
    True
    """
    return "cuda" if torch.cuda.is_available() else "cpu"
