"""NeRSemble as preprocessed for Gaussian Head Avatar (preprocess/preprocess_nersemble.py, lib/dataset/Dataset.py).

Layout of one subject folder (`NeRSemble/<id>`), per frame folder `%04d`:
images/<frame>/image_<camera>.jpg, mask_<camera>.jpg (and *_lowres_* at 256 px),
cameras/<frame>/camera_<camera>.npz (extrinsic: 3x4 world-to-camera, OpenCV axes;
intrinsic: 3x3 at `original_resolution`), params/<frame>/params.npz from
Multiview-3DMM-Fitting's BFM (exp_coeff [1, 64], pose [1, 6] axis-angle + translation,
scale [1], id_coeff). GHA places the head as x_w = R(pose[:3]) (scale x) + pose[3:].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eavatar.data.importers.common import (
    ImportOptions,
    Placement,
    Plan,
    SourceError,
    fail,
    frame_entry,
    image_size,
    matrix,
    held_out,
    param,
    read_npz,
    rigid,
    rotvec,
    protocol_splits,
    transforms_doc,
    w2c_opencv_to_c2w_opengl,
)

DEFAULT_HELD_OUT = ("FREE",)  # NeRSemble's free-performance sequence (EAvatar self-reenactment)
SCALE_TOLERANCE = 1e-3  # relative: the head space is BFM x scale, so the scale must be one number
IMAGE = re.compile(r"^image_(?!lowres_)(.+)\.jpg$")


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


def bfm_code(path: Path, ref: str, n_exp: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(exp_coeff, pose [4, 4] world-from-(scaled BFM), scale) of one frame."""
    z = read_npz(path, ref)
    exp = param(z, "exp_coeff", path, n_exp)
    pose = param(z, "pose", path, 6)
    scale = param(z, "scale", path, 1)[0]
    if scale <= 0:
        raise fail(path, "scale", f"must be positive, got {scale}")
    return exp, rigid(rotvec(pose[:3]), pose[3:]), scale


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
    frames, files, scale0, n_exp, sizes = [], [], None, None, {}
    folders = frame_folders(src)
    cams = camera_ids(src, folders[0])
    first_of: dict[str, int] = {}
    for k, folder in enumerate(folders):
        ppath = src / "params" / folder / "params.npz"
        exp, pose, scale = bfm_code(ppath, f"{src / 'images' / folder}: params/{folder}/params.npz", n_exp)
        n_exp, scale0 = len(exp), scale0 or scale
        if abs(scale / scale0 - 1) > SCALE_TOLERANCE:
            raise fail(ppath, "scale", f"{scale} differs from the first frame's {scale0}: the head pose would not be rigid")
        seq = sequence_of(int(folder) if folder.isdigit() else k, opts, src.name)
        t = k - first_of.setdefault(seq, k)
        for ci, cam in enumerate(cams):
            img = src / "images" / folder / f"image_{prefix}{cam}.jpg"
            sizes.setdefault(cam, image_size(img, f"{src / 'images' / folder}: image_{prefix}{cam}.jpg"))
            c2w, intr = camera(src / "cameras" / folder / f"camera_{cam}.npz", f"{src / 'cameras' / folder}: camera_{cam}.npz", sizes[cam], opts)
            stem = f"{seq}/{t:05d}_{ci:02d}"
            files.append(Placement(img, f"images/{stem}.jpg"))
            mask = src / "images" / folder / f"mask_{prefix}{cam}.jpg"
            if mask.is_file():
                files.append(Placement(mask, f"masks/{stem}.png", "mask"))
            entry = frame_entry(f"images/{stem}.jpg", f"masks/{stem}.png" if mask.is_file() else None, c2w, intr, t, ci, seq, exp, pose)
            entry.update({"camera_id": cam, "source_frame": folder})
            frames.append(entry)
    return Plan(_doc(src, frames, n_exp, scale0, opts), files)


def _doc(src: Path, frames: list[dict], n_exp: int, scale: float, opts: ImportOptions) -> dict:
    names = list(dict.fromkeys(f["sequence"] for f in frames))
    # GHA drops sequence names (and FREE): without --sequence-ranges the end of the recording is test
    splits = protocol_splits(frames, held_out(names, opts, str(src), DEFAULT_HELD_OUT), opts, str(src))
    source = {"format": "gha", "path": str(src.absolute()), "head_space": f"BFM x scale {scale:.8g}", "lowres": opts.lowres}
    labels = [f"exp_{i:03d}" for i in range(n_exp)]
    return transforms_doc(opts.subject or src.name, "bfm", labels, frames, splits, source)
