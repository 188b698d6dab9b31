"""What every importer shares: checked reads of source files, pose algebra, frame entries, atomic writing.

An importer turns a published layout into a `Plan` (the transforms.json to write and the
image/mask files to place); `write_plan` places them in a temporary sibling of the output,
validates the result with `load_subject`, and only then renames it into place, so a failed
import leaves nothing half-written. Every error names the source file and the field.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
from scipy.spatial.transform import Rotation

from eavatar.data.subject import SubjectError, load_subject, write_transforms
from eavatar.render.camera import OPENGL_TO_OPENCV


class SourceError(SubjectError):
    """A source layout that cannot be imported, with the file and field at fault."""


def fail(path: Path | str, field_name: str, message: str) -> SourceError:
    return SourceError(f"{path}: {field_name}: {message}")


@dataclass
class ImportOptions:
    """Importer knobs shared by every format (the CLI fills them; defaults follow the EAvatar protocol)."""

    subject: str | None = None
    """Subject name written to transforms.json (default: the first source folder's name)."""
    copy: bool = False
    """Copy images instead of linking them (relative symlinks) in place: a portable, self-contained folder."""
    overwrite: bool = False
    """Replace an existing output folder (otherwise refuse)."""
    protocol: str | None = None
    """self-reenactment, novel-view or time (protocol.py); None: self-reenactment where a sequence is held out, else time."""
    fallback: bool = False
    """Where the protocol's held-out sequence is absent, use the format's fallback (recorded, printed) instead of refusing."""
    test_sequences: tuple[str, ...] = ()
    """Sequences held out (empty: the format's default, NeRSemble's FREE for the multi-view formats)."""
    train_cameras: tuple[str, ...] = ()
    """novel-view: camera serials (camera_id) to train on (empty: the other cameras, or the NeRSemble 8/8 preset)."""
    test_cameras: tuple[str, ...] = ()
    """novel-view: camera serials to test on (empty: the other cameras, or the NeRSemble 8/8 preset)."""
    test_fraction: float = 0.2
    """time protocol: the last fraction of each sequence's timesteps is test."""
    eyes: bool = True
    """FLAME sources: append eyes_pose (gaze, 6 values) to the expression code."""
    flame_model: Path | None = None
    """Optional FLAME model (.npz, or a .pkl without chumpy): exact joint pivots for the head pose."""
    sequence_ranges: tuple[tuple[str, int, int], ...] = ()
    """GHA: (name, first, last) frame-folder index ranges naming sequences (GHA drops the names)."""
    lowres: bool = False
    """GHA: use the 256 px image_lowres_/mask_lowres_ files instead of the full-resolution ones."""
    original_resolution: int = 2048
    """GHA: the image width the camera npz intrinsics refer to (GHA's config `original_resolution`)."""


@dataclass
class Placement:
    """One file to put into the subject folder: `kind` is image (as is), mask (8-bit 1-channel) or alpha (mask from RGBA).

    A mask with `valid` (an 8-bit map, 255 where the camera saw the scene) is zeroed where
    `valid` is below half, so pixels the source padded are background in every target.
    """

    src: Path
    dst: str
    kind: str = "image"
    valid: Path | None = None


@dataclass
class Plan:
    """Everything an importer decided: transforms.json content and the files it references."""

    transforms: dict
    files: list[Placement] = field(default_factory=list)


# ---------------------------------------------------------------------------- reading


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise fail(path, "(file)", "not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise fail(path, f"line {e.lineno} column {e.colno}", f"broken JSON: {e.msg}") from None


def read_npz(path: Path, referenced_by: str) -> dict[str, np.ndarray]:
    """All arrays of an npz file; a missing file names who referenced it."""
    if not path.is_file():
        raise fail(referenced_by, "(reference)", f"file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise fail(path, "(file)", f"not a readable npz: {e}") from None


def param(arrays: dict[str, np.ndarray], key: str, path: Path, size: int | None = None) -> np.ndarray:
    """Array `key` as a finite float vector; shapes [k] and [1, k] both mean one frame's k values."""
    if key not in arrays:
        raise fail(path, key, f"missing (have {', '.join(sorted(arrays)) or 'nothing'})")
    a = np.asarray(arrays[key])
    if a.dtype.kind not in "fiu" or a.ndim > 2 or (a.ndim == 2 and a.shape[0] != 1):
        raise fail(path, key, f"expected one frame's values, shape [k] or [1, k], got {a.shape} {a.dtype}")
    v = a.reshape(-1).astype(np.float64)
    if size is not None and v.size != size:
        raise fail(path, key, f"expected {size} values, got shape {a.shape}")
    bad = np.nonzero(~np.isfinite(v))[0]
    if len(bad):
        raise fail(path, key, f"not finite at index {int(bad[0])} ({v[bad[0]]})")
    return v


def integer(value: Any, path: Path | str, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(path, field_name, f"expected an integer, got {value!r}")
    return value


def matrix(value: Any, shape: tuple[int, int], path: Path | str, field_name: str) -> np.ndarray:
    """A finite float matrix of `shape` from JSON lists or an array."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(path, field_name, f"expected a {shape[0]}x{shape[1]} matrix of numbers") from None
    if m.shape != shape:
        raise fail(path, field_name, f"expected shape {shape}, got {m.shape}")
    if not np.isfinite(m).all():
        raise fail(path, field_name, "not finite")
    return m


def image_size(path: Path, referenced_by: str) -> tuple[int, int]:
    """(w, h) of an image from its header."""
    if not path.is_file():
        raise fail(referenced_by, "(reference)", f"image not found: {path}")
    shape = iio.improps(path).shape
    return int(shape[1]), int(shape[0])


# ---------------------------------------------------------------------------- geometry


def rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:  # [3, 3], [3] -> [4, 4]
    m = np.eye(4)
    m[:3, :3] = R
    m[:3, 3] = t
    return m


def rotvec(v: np.ndarray) -> np.ndarray:  # [3] axis-angle -> [3, 3]
    return Rotation.from_rotvec(np.asarray(v, dtype=np.float64)).as_matrix()


def w2c_opencv_to_c2w_opengl(w2c: np.ndarray) -> np.ndarray:  # [3 or 4, 4] -> [4, 4]
    """World-to-camera in OpenCV axes (NeRSemble, GHA, metrical-tracker) to our OpenGL camera-to-world."""
    m = np.eye(4)
    m[: w2c.shape[0]] = w2c
    return np.linalg.inv(m) @ OPENGL_TO_OPENCV.numpy()


def flame_head_pose(rotation: np.ndarray, neck: np.ndarray, translation: np.ndarray, joints: np.ndarray | None) -> np.ndarray:
    """World-from-head of FLAME's head (skinned to the neck joint), as FLAME's LBS composes it.

    FLAME turns the root joint about J0 and the neck about J1 (rest positions), then adds
    `translation`: x_w = R0 (R1 (x - J1) + J1 - J0) + J0 + t. Without the model file the
    joints are unknown and taken at the origin (x_w = R0 R1 x + t), which is exact up to a
    per-frame shift of at most |(I - R) J| (see docs/importers.md).
    """
    R0, R1 = rotvec(rotation), rotvec(neck)
    if joints is None:
        return rigid(R0 @ R1, translation)
    J0, J1 = joints[0], joints[1]
    return rigid(R0 @ R1, R0 @ (J1 - J0) - R0 @ R1 @ J1 + J0 + translation)


# ---------------------------------------------------------------------------- labels and frames


def flame_labels(n_expr: int, eyes: bool) -> list[str]:
    """FLAME expression code labels: expr coefficients, jaw axis-angle (rx opens the mouth), optional gaze."""
    labels = [f"expr_{i:03d}" for i in range(n_expr)] + ["jaw_rx", "jaw_ry", "jaw_rz"]
    if eyes:
        labels += [f"eyes{j}_{a}" for j in (0, 1) for a in ("rx", "ry", "rz")]
    return labels


def ranks(values: list[int]) -> dict[int, int]:
    """Position of each distinct value in sorted order (source frame numbers -> timestep_index)."""
    return {v: i for i, v in enumerate(sorted(set(values)))}


def frame_entry(file_path: str, mask_path: str | None, c2w: np.ndarray, intr: tuple, t: int, cam: int, seq: str, expression: np.ndarray, head_pose: np.ndarray) -> dict:
    """One transforms.json frame in our format (intrinsics per frame: fl_x, fl_y, cx, cy, w, h)."""
    fx, fy, cx, cy, w, h = intr
    entry = {"file_path": file_path, "fg_mask_path": mask_path}
    entry.update({"fl_x": float(fx), "fl_y": float(fy), "cx": float(cx), "cy": float(cy), "w": int(w), "h": int(h)})
    entry.update({"transform_matrix": np.round(c2w, 10).tolist(), "timestep_index": int(t), "camera_index": int(cam), "sequence": seq})
    entry.update({"expression": np.round(expression, 7).tolist(), "head_pose": np.round(head_pose, 10).tolist()})
    if mask_path is None:
        del entry["fg_mask_path"]
    return entry


def transforms_doc(name: str, space: str, labels: list[str], frames: list[dict], splits: dict, source: dict) -> dict:
    """The top level of transforms.json; global intrinsics are those of the first frame (frames override)."""
    first = frames[0]
    doc = {"format_version": 1, "subject": name}
    doc.update({k: first[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")})
    doc.update({"expression_space": {"name": space, "labels": labels}, "source": source, "splits": splits, "frames": frames})
    return doc


# ---------------------------------------------------------------------------- writing


def write_plan(plan: Plan, out: str | Path, opts: ImportOptions) -> Path:
    """Place files and transforms.json in a temporary sibling, validate it, then rename it to `out`."""
    out = Path(out).absolute()
    if out.exists() and not opts.overwrite:
        raise SourceError(f"{out}: output exists; pass --overwrite to replace it")
    tmp = out.with_name(f".{out.name}.import-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for p in plan.files:
            _place(p, tmp, opts.copy)
        write_transforms(tmp, plan.transforms)
        load_subject(tmp)  # every referenced file resolves (links included)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.is_symlink() or out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _place(p: Placement, root: Path, copy: bool) -> None:
    dst = root / p.dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not p.src.is_file():
        raise SourceError(f"{p.src}: (file): not found (needed for {p.dst})")
    if p.kind == "alpha":
        rgba = np.asarray(iio.imread(p.src))
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise fail(p.src, "alpha", f"expected an RGBA image for the matte, got shape {rgba.shape}")
        iio.imwrite(dst, rgba[..., 3])
    elif p.kind == "mask" and (p.valid is not None or not _is_gray8_png(p.src)):
        m = _gray(p.src)
        if p.valid is not None:
            valid = _gray(p.valid)
            if valid.shape != m.shape:
                raise fail(p.valid, "(image)", f"visibility map is {valid.shape} but the mask {p.src} is {m.shape}")
            m = np.where(valid > 127, m, 0)
        iio.imwrite(dst, m.astype(np.uint8))
    elif copy:
        shutil.copyfile(p.src, dst)
    else:
        os.symlink(os.path.relpath(p.src.absolute(), dst.parent.absolute()), dst)


def _gray(path: Path) -> np.ndarray:  # -> [H, W] first channel
    m = np.asarray(iio.imread(path))
    return m if m.ndim == 2 else m[..., 0]


def _is_gray8_png(path: Path) -> bool:
    props = iio.improps(path)
    return path.suffix.lower() == ".png" and len(props.shape) == 2 and props.dtype == np.uint8
