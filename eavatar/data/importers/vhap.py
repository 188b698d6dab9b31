"""NeRSemble as exported by VHAP (export_as_nerf_dataset.py, combine_nerf_datasets.py), as GaussianAvatars reads it.

Layout: transforms_{train,val,test}.json (or transforms.json) whose frames carry file_path,
fg_mask_path, transform_matrix (camera-to-world, OpenGL axes), fl_x fl_y cx cy w h,
timestep_index, camera_index, camera_id and flame_param_path (one .npz per timestep: expr,
jaw_pose, eyes_pose, rotation, neck_pose, translation, shape, static_offset). A union of
sequences references its member exports as ../<subject>_<SEQUENCE>_.../images/...; VHAP's
UNION10 holds no FREE, which is a separate export, so one subject may come from several
sources (the union and the FREE export). docs/importers.md has the details.
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
    integer,
    matrix,
    param,
    ranks,
    read_json,
    read_npz,
    transforms_doc,
)
from eavatar.data.importers.flame_model import load_flame_model, rest_joints
from eavatar.data.importers.protocol import make_splits

DIVISIONS = ("train", "val", "test")
HELD_OUT = ("FREE",)  # EAvatar's self-reenactment sequence
NO_FREE = (
    "VHAP's UNION10 export holds EMO-1..4 and EXP-2..5, 8, 9 but no FREE (VHAP jobs/combine_nersemble.sh), "
    "and its transforms_test.json holds a sequence combine_nerf_datasets.py drew at random: "
    "pass the subject's FREE export (<subject>_FREE_...) as a second source"
)


def source_frames(src: Path) -> list[tuple[Path, int, dict]]:
    """(json file, index, frame) of every frame: the three divisions, else transforms.json (build drops repeats)."""
    divisions = [src / f"transforms_{d}.json" for d in DIVISIONS]
    if all(p.is_file() for p in divisions):
        files = divisions
    elif (src / "transforms.json").is_file():
        files = [src / "transforms.json"]
    else:
        raise fail(src / "transforms_train.json", "(file)", "not found: a VHAP export holds transforms_train/val/test.json or transforms.json")
    out = []
    for path in files:
        doc = read_json(path)
        frames = doc.get("frames") if isinstance(doc, dict) else None
        if not isinstance(frames, list):
            raise fail(path, "frames", "missing or not a list")
        for i, fr in enumerate(frames):
            if not isinstance(fr, dict) or not isinstance(fr.get("file_path"), str):
                raise fail(path, f"frames[{i}].file_path", "missing")
            out.append((path, i, fr))
    return out


def export_folder(file_path: str, src: Path) -> str:
    """The VHAP export `<subject>_<SEQUENCE>_<suffix>` a frame's image is in (a union points into ../<folder>/)."""
    parts = PurePosixPath(file_path).parts
    return parts[1] if parts[0] == ".." and len(parts) > 2 else src.name


def sequence_name(folder: str) -> str:
    """NeRSemble sequence: the second `_`-separated token of the export folder's name."""
    tokens = folder.split("_")
    return tokens[1] if len(tokens) > 1 and tokens[1] else folder


def static_offset(z: dict[str, np.ndarray], path: Path, n_vertices: int) -> np.ndarray | None:
    """VHAP's static_offset [1, 5023 + 120, 3] cut to the model's first V rows.

    VHAP appends 120 teeth vertices to FLAME's 5,023 (add_teeth) and gives them no weight in
    the joint regressor, so FLAME's rows come first and the others never move a joint.
    """
    if "static_offset" not in z:
        return None
    a = np.asarray(z["static_offset"])
    if a.dtype.kind not in "fiu" or a.ndim not in (2, 3) or a.shape[-1] != 3 or (a.ndim == 3 and a.shape[0] != 1) or a.size // 3 < n_vertices:
        raise fail(path, "static_offset", f"expected shape [1, >= {n_vertices}, 3] (the FLAME model's {n_vertices} vertices first), got {a.shape}")
    rows = a.reshape(-1, 3)[:n_vertices].astype(np.float64)
    if not np.isfinite(rows).all():
        raise fail(path, "static_offset", "not finite")
    return rows


def flame_code(path: Path, ref: str, n_expr: int | None, opts: ImportOptions, model) -> tuple[np.ndarray, np.ndarray]:
    """(expression code [d_exp], head pose [4, 4]) of one timestep's FLAME parameter file."""
    z = read_npz(path, ref)
    expr = param(z, "expr", path, n_expr)
    parts = [expr, param(z, "jaw_pose", path, 3)] + ([param(z, "eyes_pose", path, 6)] if opts.eyes else [])
    joints = None
    if model is not None:
        joints = rest_joints(model, param(z, "shape", path), expr, static_offset(z, path, len(model["v_template"])))
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


def build(sources: list[Path], opts: ImportOptions) -> Plan:
    """One subject from one or more VHAP exports of it (a frame two sources share is read once)."""
    model = load_flame_model(opts.flame_model) if opts.flame_model else None
    rows, codes, n_expr, seen, claims = [], {}, None, set(), {"subject": {}, "folder": {}, "index": {}, "serial": {}}
    for src in sources:
        for jpath, i, fr in source_frames(src):
            f, where = f"frames[{i}]", str(jpath)
            image = (src / fr["file_path"]).resolve()
            if image in seen:
                continue
            seen.add(image)
            for key in ("timestep_index", "camera_index", "flame_param_path"):
                if key not in fr:
                    raise fail(jpath, f"{f}.{key}", "missing")
            folder = export_folder(fr["file_path"], src)
            seq = sequence_name(folder)
            _same(claims["subject"], "these sources", folder.split("_")[0], where, f"{f}.file_path", "the subject (one import is one subject)")
            _same(claims["folder"], repr(seq), str(image.parent.parent), where, f"{f}.file_path", "the export folder")
            ppath = (src / fr["flame_param_path"]).resolve()
            if ppath not in codes:
                codes[ppath] = flame_code(ppath, f"{jpath}: {f}.flame_param_path", n_expr, opts, model)
                n_expr = n_expr or len(codes[ppath][0]) - 3 - (6 if opts.eyes else 0)
            c2w, intr = _camera(fr, where, f)
            t, cam = integer(fr["timestep_index"], jpath, f"{f}.timestep_index"), integer(fr["camera_index"], jpath, f"{f}.camera_index")
            serial = fr.get("camera_id")
            if serial is not None:
                _same(claims["index"], f"camera {serial}", cam, where, f"{f}.camera_index", "camera_index")
                _same(claims["serial"], f"camera_index {cam}", serial, where, f"{f}.camera_id", "the serial")
            mask = (src / fr["fg_mask_path"]).resolve() if fr.get("fg_mask_path") else None
            rows.append({"seq": seq, "t": t, "cam": cam, "serial": serial, "image": image, "mask": mask, "c2w": c2w, "intr": intr, "param": ppath, "division": jpath.name})
    return _plan(sources, rows, codes, n_expr, opts, model is not None)


def _same(table: dict, key: str, value, where: str, field_name: str, what: str) -> None:
    """`what` of `key` must be one value across every source; the error names both files."""
    first, first_where = table.setdefault(key, (value, where))
    if first != value:
        raise fail(where, field_name, f"{what} of {key} is {value!r} here but {first!r} in {first_where}")


def union_test_sequences(rows: list[dict]) -> tuple[str, ...]:
    """Whole sequences that combine_nerf_datasets.py put in transforms_test.json (its randomly drawn held-out ones)."""
    test = {r["seq"] for r in rows if r["division"] == "transforms_test.json"}
    other = {r["seq"] for r in rows if r["division"] != "transforms_test.json"}
    return tuple(sorted(test - other))


def _plan(sources: list[Path], rows: list[dict], codes: dict, n_expr: int, opts: ImportOptions, exact: bool) -> Plan:
    frames, files = [], []
    steps = {s: ranks([r["t"] for r in rows if r["seq"] == s]) for s in dict.fromkeys(r["seq"] for r in rows)}
    for r in sorted(rows, key=lambda r: (r["seq"], r["t"], r["cam"])):
        t = steps[r["seq"]][r["t"]]
        stem = f"{r['seq']}/{t:05d}_{r['cam']:02d}"
        image = f"images/{stem}{r['image'].suffix}"
        files.append(Placement(r["image"], image))
        mask = None
        if r["mask"] is not None:
            mask = f"masks/{stem}.png"
            files.append(Placement(r["mask"], mask, "mask"))
        expression, pose = codes[r["param"]]
        entry = frame_entry(image, mask, r["c2w"], r["intr"], t, r["cam"], r["seq"], expression, pose)
        entry.update({"source_timestep_index": r["t"], "camera_id": r["serial"]})
        frames.append(entry)
    where = ", ".join(str(s) for s in sources)
    splits, record, warnings = make_splits(frames, opts, where, HELD_OUT, union_test_sequences(rows), NO_FREE)
    source = {"format": "vhap", "paths": [str(s.absolute()) for s in sources], "head_pivots": "flame_model" if exact else "origin", "cy": "h - cy of VHAP"}
    source.update({"protocol": record, "warnings": warnings})
    return Plan(transforms_doc(opts.subject or sources[0].name, "flame", flame_labels(n_expr, opts.eyes), frames, splits, source), files)
