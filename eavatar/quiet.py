"""Known deprecation notices of our dependencies, silenced where our entry points start.

nerfstudio 1.1.5 calls APIs that torch 2.15 deprecates, so every command and notebook that
imports it would print their FutureWarnings first (a red ``torch.jit.script`` notice above
the expression editor). Each filter below names one message and the module that triggers it;
every other warning, ours and theirs, is shown as usual. Called by the ``eavatar`` command
(``eavatar.cli.main``) and by the notebooks' widgets (``eavatar.ui``).

>>> silence_known_warnings()  # idempotent: the filters are added once
"""

from __future__ import annotations

import warnings

#: (message regex, category, regex of the module the warning is attributed to), one per notice.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # nerfstudio/cameras/camera_utils.py decorates two functions with @torch.jit.script at import
    (r"`torch\.jit\.script` is deprecated", FutureWarning, r"torch\.jit\._script"),
    # nerfstudio's trainer, pipelines and fields use torch.cuda.amp's GradScaler, autocast, custom_fwd/bwd
    (r"`torch\.cuda\.amp\.(GradScaler|autocast|custom_fwd|custom_bwd)\(args\.\.\.\)` is deprecated", FutureWarning, r"nerfstudio\."),
)


def silence_known_warnings() -> None:
    """Ignore exactly the warnings of :data:`KNOWN_WARNINGS` (by message, category and module)."""
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
