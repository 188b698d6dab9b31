"""NeRSemble as preprocessed for Gaussian Head Avatar (preprocess/preprocess_nersemble.py, lib/dataset/Dataset.py).

Layout of one subject folder (`NeRSemble/<id>`), per frame folder `%04d`:
images/<frame>/image_<camera>.jpg, mask_<camera>.jpg, visible_<camera>.jpg (and *_lowres_*
at 256 px), cameras/<frame>/camera_<camera>.npz (extrinsic: 3x4 world-to-camera, OpenCV
axes; intrinsic: 3x3 at `original_resolution`), params/<frame>/params.npz from
Multiview-3DMM-Fitting (id_coeff, exp_coeff, pose [1, 6] axis-angle + translation, scale).
Its BFM, FLAME and FaceVerse fits are saved under the same keys; their sizes tell them
apart. GHA places the head as x_w = R(pose[:3]) (scale x) + pose[3:]. The stock
preprocessing skips FREE and numbers the frames of all sequences continuously, so sequence
names exist only as --sequence-ranges, taken on trust.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from eavatar.data.importers.common import (
    ImportOptions,
    Placement,
    Plan,
    SourceError,
    fail,
    flame_labels,
    frame_entry,
    image_size,
    matrix,
    param,
    read_npz,
    rigid,
    rotvec,
    transforms_doc,
    w2c_opencv_to_c2w_opengl,
)
from eavatar.data.importers.protocol import make_splits

DEFAULT_HELD_OUT = ("FREE",)  # NeRSemble's free-performance sequence (EAvatar self-reenactment)
SCALE_TOLERANCE = 1e-3  # relative: the head space is the model x scale, so the scale must be one number
IMAGE = re.compile(r"^image_(?!lowres_)(.+)\.jpg$")
#: (id_coeff, exp_coeff) sizes of Multiview-3DMM-Fitting's face models -> expression space name.
SPACES = {(80, 64): "bfm", (100, 59): "flame", (150, 52): "faceverse"}
FLAME_EXPR = 50  # its FLAME exp_coeff: 50 expression coefficients, then jaw (3) and eyes (6)
NO_FREE = (
    "GHA's preprocess_nersemble.py skips every folder whose name contains FREE and numbers the frames of all "
    "sequences continuously, so stock GHA data has no FREE; if you preprocessed FREE yourself, name its frame "
    "folders with --sequence-ranges"
)
ON_TRUST = (
    "GHA's stock preprocessing writes no FREE and no sequence boundaries (frames numbered continuously in "
    "unsorted glob order): the held-out sequence is whatever --sequence-ranges says it is"
)
UNMASKED_PADDING = (
    "no visible_<camera>.jpg: the zero padding GHA's crop adds at the image sides (preprocess_nersemble.py "
    "CropImage with LEFT_UP [-200, 304], CROP_SIZE 2600) stays in the targets and is scored"
)


def frame_folders(src: Path) -> list[str]:
    images = src / "images"
    if not images.is_dir():
        raise fail(images, "(folder)", "not found: a GHA subject folder holds images/, cameras/ and params/ per frame")
    frames = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not frames:
        raise fail(images, "(folder)", "no frame folders")
    return frames


def camera_ids(src: Path, frame: str) -> list[str]:
    ids = sorted(m.group(1) for p in (src / "images" / frame).iterdir() if (m := IMAGE.match(p.name)))
    if not ids:
        raise fail(src / "images" / frame, "image_<camera>.jpg", "no images")
    return ids


def visible_box(visible: Path, size: tuple[int, int]) -> list[int] | None:
    """[x0, y0, x1, y1] around the pixels ``visible_<camera>.jpg`` marks as seen (its crop's
    padding left out), None when that is the whole image."""
    seen = iio.imread(visible)
    seen = (seen if seen.ndim == 2 else seen[..., 0]) > 127
    if seen.shape[::-1] != tuple(size):
        raise fail(visible, "(image)", f"visibility map of {seen.shape[1]} x {seen.shape[0]} px for a {size[0]} x {size[1]} image")
    if not seen.any():
        raise fail(visible, "(image)", "no pixel marked visible")
    ys, xs = np.nonzero(seen)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return None if box == [0, 0, *size] else box


def fit_code(path: Path, ref: str, sizes: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]]:
    """(exp_coeff, pose [4, 4] world-from-(scaled model), scale, (id, exp) sizes) of one frame."""
    z = read_npz(path, ref)
    ident = param(z, "id_coeff", path, sizes and sizes[0])
    exp = param(z, "exp_coeff", path, sizes and sizes[1])
    if (ident.size, exp.size) not in SPACES:
        known = ", ".join(f"{name} (id {i}, exp {e})" for (i, e), name in SPACES.items())
        raise fail(path, "exp_coeff", f"{exp.size} values with id_coeff of {ident.size}: not a Multiview-3DMM-Fitting model ({known})")
    pose = param(z, "pose", path, 6)
    scale = param(z, "scale", path, 1)[0]
    if scale <= 0:
        raise fail(path, "scale", f"must be positive, got {scale}")
    return exp, rigid(rotvec(pose[:3]), pose[3:]), scale, (ident.size, exp.size)


def expression(space: str, exp: np.ndarray, eyes: bool) -> tuple[np.ndarray, list[str]]:
    """The expression code and its labels: FLAME's in our FLAME order (expr, jaw, eyes), the others as fitted."""
    if space == "flame":
        return (exp if eyes else exp[: FLAME_EXPR + 3]), flame_labels(FLAME_EXPR, eyes)
    return exp, [f"exp_{i:03d}" for i in range(exp.size)]


def camera(path: Path, ref: str, size: tuple[int, int], opts: ImportOptions) -> tuple[np.ndarray, tuple]:
    """OpenGL c2w and intrinsics of camera npz, intrinsics rescaled from original_resolution to the image."""
    z = read_npz(path, ref)
    for key in ("extrinsic", "intrinsic"):
        if key not in z:
            raise fail(path, key, "missing")
    ext = matrix(z["extrinsic"], (3, 4), path, "extrinsic")
    K = matrix(z["intrinsic"], (3, 3), path, "intrinsic")
    s = size[0] / opts.original_resolution
    c2w = w2c_opencv_to_c2w_opengl(ext)
    return c2w, (K[0, 0] * s, K[1, 1] * s, K[0, 2] * s, K[1, 2] * s, size[0], size[1])


def sequence_of(index: int, opts: ImportOptions, default: str) -> str:
    for name, first, last in opts.sequence_ranges:
        if first <= index <= last:
            return name
    if opts.sequence_ranges:
        raise SourceError(f"sequence_ranges: frame folder index {index} is in no range {list(opts.sequence_ranges)}")
    return default


def build(src: Path, opts: ImportOptions) -> Plan:
    src = Path(src)
    prefix = "lowres_" if opts.lowres else ""
    frames, files, scale0, sizes, image_sizes, warnings = [], [], None, None, {}, []
    folders = frame_folders(src)
    cams = camera_ids(src, folders[0])
    first_of: dict[str, int] = {}
    for k, folder in enumerate(folders):
        ppath, here = src / "params" / folder / "params.npz", src / "images" / folder
        exp, pose, scale, sizes = fit_code(ppath, f"{here}: params/{folder}/params.npz", sizes)
        scale0 = scale0 or scale
        if abs(scale / scale0 - 1) > SCALE_TOLERANCE:
            raise fail(ppath, "scale", f"{scale} differs from the first frame's {scale0}: the head pose would not be rigid")
        code, labels = expression(SPACES[sizes], exp, opts.eyes)
        seq = sequence_of(int(folder) if folder.isdigit() else k, opts, src.name)
        t = k - first_of.setdefault(seq, k)
        for ci, cam in enumerate(cams):
            img = here / f"image_{prefix}{cam}.jpg"
            image_sizes.setdefault(cam, image_size(img, f"{here}: image_{prefix}{cam}.jpg"))
            c2w, intr = camera(src / "cameras" / folder / f"camera_{cam}.npz", f"{src / 'cameras' / folder}: camera_{cam}.npz", image_sizes[cam], opts)
            stem = f"{seq}/{t:05d}_{ci:02d}"
            files.append(Placement(img, f"images/{stem}.jpg"))
            matte, visible = here / f"mask_{prefix}{cam}.jpg", here / f"visible_{prefix}{cam}.jpg"
            valid = visible if visible.is_file() else None  # where the camera saw anything: outside it, background
            if valid is None and UNMASKED_PADDING not in warnings:
                warnings.append(UNMASKED_PADDING)
            mask_src = matte if matte.is_file() else valid
            mask = Placement(mask_src, f"masks/{stem}.png", "mask", valid) if mask_src else None
            files += [mask] if mask else []
            entry = frame_entry(f"images/{stem}.jpg", mask and mask.dst, c2w, intr, t, ci, seq, code, pose)
            entry.update({"camera_id": cam, "source_frame": folder})
            box = visible_box(valid, image_sizes[cam]) if valid else None
            if box:
                entry["valid_box"] = box  # evaluation leaves the padding out
            frames.append(entry)
    splits, record, protocol_warnings = make_splits(frames, opts, str(src), DEFAULT_HELD_OUT, (), NO_FREE)
    warnings += protocol_warnings + ([ON_TRUST] if record["held_out"] else [])
    source = {"format": "gha", "path": str(src.absolute()), "head_space": f"{SPACES[sizes]} x scale {scale0:.8g}", "lowres": opts.lowres}
    source.update({"protocol": record, "warnings": warnings})
    return Plan(transforms_doc(opts.subject or src.name, SPACES[sizes], labels, frames, splits, source), files)
