"""Optional FLAME model file: the rest joints that FLAME rotates the head about.

The importers never need it; given, it makes the head pose exact (see common.flame_head_pose).
FLAME's own pickles (flame2023.pkl, generic_model.pkl) store chumpy arrays in older
releases; those need chumpy installed, or a conversion to .npz with the keys below.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from eavatar.data.importers.common import SourceError, fail

KEYS = ("v_template", "shapedirs", "J_regressor")
EXPR_OFFSET = 300  # FLAME shapedirs: 300 identity directions, then the expression ones


def load_flame_model(path: Path) -> dict[str, np.ndarray]:
    """v_template [V, 3], shapedirs [V, 3, K], J_regressor [J, V] as dense float arrays."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: (file): FLAME model not found (--flame-model is optional; leave it out to use origin pivots)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    else:
        raw = _unpickle(path)
    model = {}
    for key in KEYS:
        if key not in raw:
            raise fail(path, key, f"missing (a FLAME model needs {', '.join(KEYS)})")
        value = raw[key]
        value = value.toarray() if hasattr(value, "toarray") else value
        model[key] = np.asarray(value, dtype=np.float64)
    V = model["v_template"].shape[0]
    if model["v_template"].shape != (V, 3) or model["shapedirs"].shape[:2] != (V, 3) or model["J_regressor"].shape[1] != V:
        raise fail(path, "shapes", f"inconsistent: v_template {model['v_template'].shape}, shapedirs {model['shapedirs'].shape}, J_regressor {model['J_regressor'].shape}")
    return model


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return dict(pickle.load(f, encoding="latin1"))
    except ModuleNotFoundError as e:
        raise fail(path, "(file)", f"this pickle needs module {e.name!r} (chumpy in older FLAME releases): install it or convert to .npz with {', '.join(KEYS)}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as e:
        raise fail(path, "(file)", f"not a readable FLAME pickle: {e}") from None


def rest_joints(model: dict[str, np.ndarray], shape: np.ndarray, expr: np.ndarray, static_offset: np.ndarray | None = None) -> np.ndarray:
    """Rest joints [2, 3] (root, neck) of the shaped template, as FLAME regresses them for one frame.

    FLAME stacks 300 shape then expression directions in shapedirs; both move the joints, and
    so does a per-vertex `static_offset` [V, 3] (VHAP's, cut to the model's V vertices).
    """
    dirs = model["shapedirs"]
    n_shape = min(len(shape), dirs.shape[2], EXPR_OFFSET)
    v = model["v_template"] + dirs[:, :, :n_shape] @ shape[:n_shape]
    n_expr = min(len(expr), max(dirs.shape[2] - EXPR_OFFSET, 0))
    if n_expr:
        v = v + dirs[:, :, EXPR_OFFSET : EXPR_OFFSET + n_expr] @ expr[:n_expr]
    if static_offset is not None:
        v = v + static_offset
    return model["J_regressor"][:2] @ v
