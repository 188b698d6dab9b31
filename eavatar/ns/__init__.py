"""nerfstudio glue: dataparser, model wrapper, trainer and the ``eavatar`` method spec.

Thin by design: the science lives in :mod:`eavatar.avatar`; this package only adapts it to
nerfstudio's Cameras, optimisers and callbacks.
"""
