"""The avatar itself: canonical Gaussians, the dynamic generator, densification.

Nothing here imports nerfstudio; :mod:`eavatar.ns` wraps these modules for ``ns-train``.
"""
