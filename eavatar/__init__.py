"""EAvatar: expression-controllable 3D Gaussian head avatars (arXiv 2508.13537)."""

__version__ = "0.1.0"
