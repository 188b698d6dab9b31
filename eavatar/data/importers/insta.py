"""Monocular INSTA data (scripts/transforms.py and scripts/postprocess.py of Zielon/INSTA).

Layout: transforms.json with top-level w h fl_x fl_y cx cy and frames of file_path
(images/<id>.png, RGBA: the alpha is the matte), exp_path (flame/exp/<id>.txt, FLAME
expression coefficients one per line), mesh_path, and transform_matrix = inverse of the
metrical tracker's OpenCV world-to-camera. INSTA writes no head pose and no jaw pose: the
head's motion is in the per-frame camera, so head_pose is the identity here.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import imageio.v3 as iio
import numpy as np

from eavatar.data.importers.common import (
    ImportOptions,
    Placement,
    Plan,
    fail,
    frame_entry,
    matrix,
    ranks,
    read_json,
    transforms_doc,
)
from eavatar.data.importers.protocol import make_splits
from eavatar.render.camera import OPENGL_TO_OPENCV


def read_expression(path: Path, ref: str, n: int | None) -> np.ndarray:
    """One frame's FLAME expression coefficients from INSTA's text file."""
    if not path.is_file():
        raise fail(ref, "exp_path", f"file not found: {path}")
    try:
        v = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise fail(path, "exp", f"not a list of numbers: {e}") from None
    if v.ndim != 1 or v.size == 0 or (n is not None and v.size != n):
        raise fail(path, "exp", f"expected {n or 'some'} coefficients, one per line, got shape {v.shape}")
    bad = np.nonzero(~np.isfinite(v))[0]
    if len(bad):
        raise fail(path, "exp", f"not finite at index {int(bad[0])} ({v[bad[0]]})")
    return v


def intrinsics(doc: dict, where: Path) -> tuple:
    values = []
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise fail(where, key, f"expected a positive number, got {v!r}")
        values.append(float(v))
    return (*values[:4], int(round(values[4])), int(round(values[5])))


def build(src: Path, opts: ImportOptions) -> Plan:
    src = Path(src)
    tpath = src / "transforms.json"
    doc = read_json(tpath)
    frames_in = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames_in, list) or not frames_in:
        raise fail(tpath, "frames", "missing or empty")
    intr, seq, n = intrinsics(doc, tpath), opts.subject or src.name, None
    ids = [_frame_id(fr, i, tpath) for i, fr in enumerate(frames_in)]
    step = ranks(ids)
    frames, files = [], []
    for i, fr in enumerate(frames_in):
        f = f"frames[{i}]"
        exp = read_expression(src / str(fr.get("exp_path")), f"{tpath}: {f}", n)
        n = exp.size
        c2w = matrix(fr.get("transform_matrix"), (4, 4), tpath, f"{f}.transform_matrix") @ OPENGL_TO_OPENCV.numpy()
        t = step[ids[i]]
        image_src = src / fr["file_path"]
        image = f"images/{t:05d}{PurePosixPath(fr['file_path']).suffix}"
        files.append(Placement(image_src, image))
        mask = f"masks/{t:05d}.png" if _has_alpha(image_src, f"{tpath}: {f}.file_path") else None
        if mask:
            files.append(Placement(image_src, mask, "alpha"))
        frames.append(frame_entry(image, mask, c2w, intr, t, 0, seq, exp, np.eye(4)) | {"source_file": fr["file_path"]})
    splits, record, warnings = make_splits(frames, opts, str(src))
    source = {"format": "insta", "path": str(src.absolute()), "head_pose": "identity (INSTA moves the camera)", "protocol": record, "warnings": warnings}
    return Plan(transforms_doc(seq, "flame", [f"expr_{i:03d}" for i in range(n)], frames, splits, source), files)


def _frame_id(fr: dict, i: int, tpath: Path) -> int:
    """INSTA names frames by number (images/<id>.png); that number orders time."""
    if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str):
        raise fail(tpath, f"frames[{i}].file_path", "missing")
    stem = PurePosixPath(fr["file_path"]).stem
    return int(stem) if stem.isdigit() else i


def _has_alpha(path: Path, ref: str) -> bool:
    if not path.is_file():
        raise fail(ref, "(reference)", f"image not found: {path}")
    shape = iio.improps(path).shape
    return len(shape) == 3 and shape[2] == 4
