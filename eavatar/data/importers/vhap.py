"""NeRSemble as exported by VHAP (export_as_nerf_dataset.py, combine_nerf_datasets.py), as GaussianAvatars reads it.

Layout: transforms_{train,val,test}.json (or transforms.json) whose frames carry file_path,
fg_mask_path, transform_matrix (camera-to-world, OpenGL axes), fl_x fl_y cx cy w h,
timestep_index, camera_index and flame_param_path (one .npz per timestep: expr, jaw_pose,
eyes_pose, rotation, neck_pose, translation, shape). A union of sequences references its
member exports as ../<subject>_<SEQUENCE>_.../images/...; docs/importers.md has the details.
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
    held_out,
    integer,
    matrix,
    param,
    protocol_splits,
    ranks,
    read_json,
    read_npz,
    transforms_doc,
)
from eavatar.data.importers.flame_model import load_flame_model, rest_joints

DIVISIONS = ("train", "val", "test")


def source_frames(src: Path) -> list[tuple[Path, int, dict]]:
    """(json file, index, frame) of every distinct frame: the union of the three divisions, else transforms.json."""
    divisions = [src / f"transforms_{d}.json" for d in DIVISIONS]
    if all(p.is_file() for p in divisions):
        files = divisions
    elif (src / "transforms.json").is_file():
        files = [src / "transforms.json"]
    else:
        raise fail(src / "transforms_train.json", "(file)", "not found: a VHAP export holds transforms_train/val/test.json or transforms.json")
    seen, out = set(), []
    for path in files:
        doc = read_json(path)
        frames = doc.get("frames") if isinstance(doc, dict) else None
        if not isinstance(frames, list):
            raise fail(path, "frames", "missing or not a list")
        for i, fr in enumerate(frames):
            if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str):
                raise fail(path, f"frames[{i}].file_path", "missing")
            if fr["file_path"] not in seen:
                seen.add(fr["file_path"])
                out.append((path, i, fr))
    return out


def sequence_name(file_path: str, src: Path) -> str:
    """NeRSemble sequence from the export folder `<subject>_<SEQUENCE>_<suffix>` (a union points into ../<folder>/)."""
    parts = PurePosixPath(file_path).parts
    folder = parts[1] if parts[0] == ".." and len(parts) > 2 else src.name
    tokens = folder.split("_")
    return tokens[1] if len(tokens) > 1 and tokens[1] else folder


def flame_code(path: Path, ref: str, n_expr: int | None, opts: ImportOptions, model) -> tuple[np.ndarray, np.ndarray]:
    """(expression code [d_exp], head pose [4, 4]) of one timestep's FLAME parameter file."""
    z = read_npz(path, ref)
    expr = param(z, "expr", path, n_expr)
    parts = [expr, param(z, "jaw_pose", path, 3)] + ([param(z, "eyes_pose", path, 6)] if opts.eyes else [])
    joints = None
    if model is not None:
        offset = z.get("static_offset")
        joints = rest_joints(model, param(z, "shape", path), expr, None if offset is None else np.asarray(offset, dtype=np.float64))
    pose = flame_head_pose(param(z, "rotation", path, 3), param(z, "neck_pose", path, 3), param(z, "translation", path, 3), joints)
    return np.concatenate(parts), pose


def _camera(fr: dict, where: str, f: str) -> tuple[np.ndarray, tuple]:
    """OpenGL c2w and intrinsics; VHAP flipped cy to H - cy with its OpenGL conversion, so it is flipped back."""
    c2w = matrix(fr.get("transform_matrix"), (4, 4), where, f"{f}.transform_matrix")
    values = []
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        v = fr.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise fail(where, f"{f}.{key}", f"expected a number, got {v!r}")
        values.append(float(v))
    fx, fy, cx, cy, w, h = values
    return c2w, (fx, fy, cx, h - cy, int(w), int(h))


def build(src: Path, opts: ImportOptions) -> Plan:
    src = Path(src)
    model = load_flame_model(opts.flame_model) if opts.flame_model else None
    rows, codes, n_expr = [], {}, None
    for jpath, i, fr in source_frames(src):
        f = f"frames[{i}]"
        for key in ("timestep_index", "camera_index", "flame_param_path"):
            if key not in fr:
                raise fail(jpath, f"{f}.{key}", "missing")
        ppath = (src / fr["flame_param_path"]).resolve()
        if ppath not in codes:
            codes[ppath] = flame_code(ppath, f"{jpath}: {f}.flame_param_path", n_expr, opts, model)
            n_expr = n_expr or len(codes[ppath][0]) - 3 - (6 if opts.eyes else 0)
        c2w, intr = _camera(fr, str(jpath), f)
        t, cam = integer(fr["timestep_index"], jpath, f"{f}.timestep_index"), integer(fr["camera_index"], jpath, f"{f}.camera_index")
        rows.append((sequence_name(fr["file_path"], src), t, cam, fr, c2w, intr, ppath, jpath.name))
    return _plan(src, rows, codes, n_expr, opts, model is not None, union_test_sequences(rows))


def union_test_sequences(rows: list) -> tuple[str, ...]:
    """Whole sequences that combine_nerf_datasets.py put in transforms_test.json (its held-out sequences)."""
    test = {r[0] for r in rows if r[7] == "transforms_test.json"}
    other = {r[0] for r in rows if r[7] != "transforms_test.json"}
    return tuple(sorted(test - other))


def _plan(src: Path, rows: list, codes: dict, n_expr: int, opts: ImportOptions, exact: bool, union_test: tuple) -> Plan:
    frames, files = [], []
    steps = {s: ranks([r[1] for r in rows if r[0] == s]) for s in dict.fromkeys(r[0] for r in rows)}
    for seq, t_src, cam, fr, c2w, intr, ppath, _ in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        t = steps[seq][t_src]
        stem = f"{seq}/{t:05d}_{cam:02d}"
        image = f"images/{stem}{PurePosixPath(fr['file_path']).suffix}"
        files.append(Placement((src / fr["file_path"]).resolve(), image))
        mask = None
        if fr.get("fg_mask_path"):
            mask = f"masks/{stem}.png"
            files.append(Placement((src / fr["fg_mask_path"]).resolve(), mask, "mask"))
        expression, pose = codes[ppath]
        entry = frame_entry(image, mask, c2w, intr, t, cam, seq, expression, pose)
        entry.update({"source_timestep_index": t_src, "camera_id": fr.get("camera_id")})
        frames.append(entry)
    source = {"format": "vhap", "path": str(src.absolute()), "head_pivots": "flame_model" if exact else "origin", "cy": "h - cy of VHAP"}
    names = list(dict.fromkeys(f["sequence"] for f in frames))
    splits = protocol_splits(frames, held_out(names, opts, str(src), ("FREE",) if "FREE" in names else union_test), opts, str(src))
    labels = flame_labels(n_expr, opts.eyes)
    return Plan(transforms_doc(opts.subject or src.name, "flame", labels, frames, splits, source), files)
