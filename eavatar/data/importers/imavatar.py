"""Monocular IMavatar data (preprocess/DECA/optimize.py writes it, code/datasets/real_dataset.py reads it).

Layout: one folder per video (sub_dir) with flame_params.json, image/<n>.png, mask/<n>.png.
flame_params.json: frames of file_path ('./image/<n>', no extension), world_mat (3x4
world-to-camera), expression [50], pose [15] = FLAME global, neck, jaw, eyes (axis-angle);
top level intrinsics [fx, fy, cx, cy] divided by the image size (fx negated) and
shape_params [100]. The camera frame is OpenGL's (x right, y up, looking down -z) and the
world is FLAME space scaled by 4, so the head space here is 4 x FLAME.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from eavatar.data.importers.common import (
    ImportOptions,
    Placement,
    Plan,
    fail,
    flame_head_pose,
    flame_labels,
    frame_entry,
    image_size,
    matrix,
    ranks,
    read_json,
    transforms_doc,
)
from eavatar.data.importers.flame_model import load_flame_model, rest_joints
from eavatar.data.importers.protocol import make_splits

JSON_NAME = "flame_params.json"
FLAME_SCALE = 4.0  # optimize.py: "FLAME head is scaled by 4 to fit unit sphere tightly"


def json_files(src: Path) -> list[Path]:
    """One flame_params.json (src is a video folder) or one per video sub-folder (src is the subject folder)."""
    if (src / JSON_NAME).is_file():
        return [src / JSON_NAME]
    found = sorted(src.glob(f"*/{JSON_NAME}"))
    if not found:
        raise fail(src / JSON_NAME, "(file)", "not found, nor in any sub-folder: an IMavatar video folder holds flame_params.json")
    return found


def vector(value, n: int | None, where: Path, field_name: str) -> np.ndarray:
    """A finite list of numbers (of length n when given)."""
    if not isinstance(value, list) or not value:
        raise fail(where, field_name, f"expected a list of {n or 'some'} numbers, got {type(value).__name__}")
    return matrix([value], (1, n or len(value)), where, field_name)[0]


def intrinsics(doc: dict, where: Path, size: tuple[int, int]) -> tuple:
    """Pixels from IMavatar's normalised [fx, fy, cx, cy] (an older format stores pixels at 512, as real_dataset.py tells by cy > 1)."""
    fx, fy, cx, cy = vector(doc.get("intrinsics"), 4, where, "intrinsics")
    w, h = size
    sx, sy = (w / 512, h / 512) if cy > 1 else (w, h)
    if fx == 0 or fy == 0:
        raise fail(where, "intrinsics", "focal length is zero")
    return abs(fx) * sx, abs(fy) * sy, cx * sx, cy * sy, w, h


def read_video(jpath: Path, opts: ImportOptions, model) -> list[dict]:
    doc = read_json(jpath)
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        raise fail(jpath, "frames", "missing or empty")
    shape = vector(doc.get("shape_params"), None, jpath, "shape_params") if model else None
    rows = []
    for i, fr in enumerate(frames):
        f = f"frames[{i}]"
        rel = fr.get("file_path") if isinstance(fr, dict) else None
        if not isinstance(rel, str):
            raise fail(jpath, f"{f}.file_path", "missing")
        image = jpath.parent / f"{rel}.png"
        parts = PurePosixPath(rel).parts
        mask = jpath.parent / PurePosixPath(*["mask" if p == "image" else p for p in parts]).with_suffix(".png")
        w2c = matrix(fr.get("world_mat"), (3, 4), jpath, f"{f}.world_mat")
        exp = vector(fr.get("expression"), None, jpath, f"{f}.expression")
        pose = vector(fr.get("pose"), 15, jpath, f"{f}.pose")
        joints = None if model is None else FLAME_SCALE * rest_joints(model, shape, exp)
        head = flame_head_pose(pose[0:3], pose[3:6], np.zeros(3), joints)
        code = np.concatenate([exp, pose[6:9]] + ([pose[9:15]] if opts.eyes else []))
        rows.append({"image": image, "mask": mask, "w2c": w2c, "code": code, "head": head, "n_exp": exp.size, "name": parts[-1], "json": jpath, "field": f})
    return rows


def build(src: Path, opts: ImportOptions) -> Plan:
    src = Path(src)
    model = load_flame_model(opts.flame_model) if opts.flame_model else None
    frames, files, n_exp = [], [], None
    for jpath in json_files(src):
        seq, rows = jpath.parent.name, read_video(jpath, opts, model)
        intr = intrinsics(read_json(jpath), jpath, image_size(rows[0]["image"], f"{jpath}: {rows[0]['field']}.file_path"))
        step = ranks([int(r["name"]) if r["name"].isdigit() else k for k, r in enumerate(rows)])
        for k, r in enumerate(rows):
            n_exp = n_exp or r["n_exp"]
            if r["n_exp"] != n_exp:
                raise fail(r["json"], f"{r['field']}.expression", f"expected {n_exp} values like the first frame, got {r['n_exp']}")
            t = step[int(r["name"]) if r["name"].isdigit() else k]
            stem = f"{seq}/{t:05d}"
            files.append(Placement(r["image"], f"images/{stem}.png"))
            mask = f"masks/{stem}.png" if r["mask"].is_file() else None
            if mask:
                files.append(Placement(r["mask"], mask, "mask"))
            c2w = np.linalg.inv(np.vstack([r["w2c"], [0, 0, 0, 1]]))  # already OpenGL axes
            frames.append(frame_entry(f"images/{stem}.png", mask, c2w, intr, t, 0, seq, r["code"], r["head"]))
    splits, record, warnings = make_splits(frames, opts, str(src))
    source = {"format": "imavatar", "path": str(src.absolute()), "head_space": "4 x FLAME", "head_pivots": "flame_model" if model else "origin"}
    source.update({"protocol": record, "warnings": warnings})
    return Plan(transforms_doc(opts.subject or src.name, "flame", flame_labels(n_exp, opts.eyes), frames, splits, source), files)
