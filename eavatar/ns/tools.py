"""nerfstudio's command-line tools that cannot handle an EAvatar, stopped before they load anything.

``ns-viewer``, ``ns-eval`` and ``ns-render dataset`` work on an ``eavatar`` run. Two do not:

- ``ns-export gaussian-splat`` writes splatfacto's Gaussians (it asserts a ``SplatfactoModel``
  after loading everything); an avatar's Gaussians depend on the expression and head pose.
- ``ns-render camera-path`` renders a camera path, which has no expression track: every frame
  would show the viewer's default (neutral) expression.

Both call ``eval_setup``, which builds the datamanager first; it calls
:func:`refuse_unsupported_tool`, which finds the tool on the call stack and exits with what to
run instead (``eavatar export`` / ``eavatar render``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Callable, Optional


class UnsupportedTool(SystemExit):
    """A nerfstudio tool that cannot handle an EAvatar (exit status 1, the message on stderr, no traceback)."""


def _export_message(tool, data: Path) -> str:
    avatar = Path(tool.load_config).parent / "avatar.pt"
    out = Path(tool.output_dir) / tool.output_filename
    return (
        "ns-export gaussian-splat cannot export an EAvatar: it only knows splatfacto models, and an avatar's "
        "Gaussians move with the expression and the head pose. Export a standard 3DGS PLY with `eavatar export`:\n"
        f"  neutral (canonical):        eavatar export --avatar {avatar} --out {out}\n"
        f"  at a frame of the subject:  eavatar export --avatar {avatar} --data {data} --frame 0 --out {out}\n"
        f"  at named coefficients:      eavatar export --avatar {avatar} --set LABEL=VALUE ... --out {out}"
    )


def _render_message(tool, data: Path) -> str:
    avatar = Path(tool.load_config).parent / "avatar.pt"
    return (
        "ns-render camera-path cannot render an EAvatar: a camera path carries no expression track, so every "
        "frame would show the same expression. Render with `eavatar render`:\n"
        f"  eavatar render --avatar {avatar} --data {data} --out {Path(tool.output_path).parent}\n"
        "  (a test sequence driven by its recorded expressions, and an orbit at params.yaml render.orbit_expression);\n"
        "  `ns-render dataset` also works: it renders each frame at its own expression."
    )


#: (module, class) of a nerfstudio tool -> its message, given the tool and the subject folder.
UNSUPPORTED: dict[tuple[str, str], Callable[[object, Path], str]] = {
    ("nerfstudio.scripts.exporter", "ExportGaussianSplat"): _export_message,
    ("nerfstudio.scripts.render", "RenderCameraPath"): _render_message,
}


def unsupported_tool(frame: Optional[FrameType] = None) -> Optional[tuple[object, Callable[[object, Path], str]]]:
    """The unsupported nerfstudio tool whose ``main`` is on the call stack, with its message, or None."""
    classes = [(getattr(sys.modules[m], c, None), message) for (m, c), message in UNSUPPORTED.items() if m in sys.modules]
    classes = [(cls, message) for cls, message in classes if isinstance(cls, type)]
    if not classes:
        return None
    frame = frame or sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        for cls, message in classes:
            if isinstance(owner, cls):
                return owner, message
        frame = frame.f_back
    return None


def refuse_unsupported_tool(data: Path) -> None:
    """Exit with what to run instead when called (indirectly) by an unsupported nerfstudio tool."""
    found = unsupported_tool(sys._getframe(1))
    if found is not None:
        tool, message = found
        raise UnsupportedTool(message(tool, data))
