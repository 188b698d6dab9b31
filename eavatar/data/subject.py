"""Load and validate a subject folder (docs/subject-format.md).

Everything downstream trusts a loaded Subject, so every check happens here, once, and
every error names the file and the field: a bad frame must never reach training.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eavatar.errors import EAvatarError

FORMAT_VERSION = 1
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
SELECTOR_KEYS = ("sequences", "cameras", "frames")
RIGID_TOLERANCE = 1e-4


class SubjectError(EAvatarError, ValueError):
    """A subject folder that cannot be used, with the file and field at fault."""


@dataclass
class Subject:
    """A validated subject: per-frame arrays indexed by frame (the order of ``frames``)."""

    root: Path
    name: str
    expression_space: str
    expression_labels: list[str]
    image_paths: list[Path]
    mask_paths: list[Path | None]
    region_paths: list[Path | None]
    mesh_paths: list[Path | None]
    c2w: np.ndarray  # [N, 4, 4] float64, OpenGL camera-to-world
    intrinsics: np.ndarray  # [N, 4] fx, fy, cx, cy
    image_sizes: np.ndarray  # [N, 2] int w, h
    expressions: np.ndarray  # [N, d_exp] float32
    head_poses: np.ndarray  # [N, 4, 4] float32 world-from-head
    timesteps: np.ndarray  # [N] int
    camera_indices: np.ndarray  # [N] int
    sequences: list[str]
    template_mesh: Path | None
    splits: dict[str, dict]
    region_labels: dict[str, int]  # names of the values in region maps (empty without region maps)
    valid_boxes: list[tuple[int, int, int, int] | None]  # x0, y0, x1, y1: the pixels metrics count (None: all)

    @property
    def d_exp(self) -> int:
        return len(self.expression_labels)

    @property
    def num_frames(self) -> int:
        return len(self.image_paths)

    @property
    def transforms_path(self) -> Path:
        return self.root / "transforms.json"

    def split(self, name: str) -> np.ndarray:
        """Sorted frame indices of split ``name``."""
        if name not in self.splits:
            raise SubjectError(f"{self.transforms_path}: splits.{name}: no such split (have {', '.join(self.splits)})")
        return _select(self, self.splits[name], f"splits.{name}")

    def sequence_names(self) -> list[str]:
        return list(dict.fromkeys(self.sequences))

    def camera_ids(self) -> list[int]:
        return sorted(set(int(c) for c in self.camera_indices))

    def frames_of_sequence(self, sequence: str, camera: int | None = None) -> np.ndarray:
        """Frames of ``sequence`` (optionally one camera), in time order."""
        idx = [i for i, s in enumerate(self.sequences) if s == sequence and (camera is None or self.camera_indices[i] == camera)]
        return np.asarray(sorted(idx, key=lambda i: (int(self.timesteps[i]), int(self.camera_indices[i]))), dtype=np.int64)


def _select(subject: Subject, selector: dict, where: str) -> np.ndarray:
    mask = np.ones(subject.num_frames, dtype=bool)
    if "sequences" in selector:
        mask &= np.isin(np.asarray(subject.sequences, dtype=object), list(selector["sequences"]))
    if "cameras" in selector:
        mask &= np.isin(subject.camera_indices, list(selector["cameras"]))
    if "frames" in selector:
        chosen = np.zeros_like(mask)
        chosen[np.asarray(selector["frames"], dtype=np.int64)] = True
        mask &= chosen
    idx = np.nonzero(mask)[0].astype(np.int64)
    if len(idx) == 0:
        raise SubjectError(f"{subject.transforms_path}: {where}: selects no frames")
    return idx


class _Reader:
    """Typed field access that knows which file and field it is reading."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, field: str, message: str) -> SubjectError:
        return SubjectError(f"{self.path}: {field}: {message}")

    def get(self, obj: dict, key: str, field: str, default: Any = ...) -> Any:
        if key not in obj:
            if default is ...:
                raise self.fail(field, "missing")
            return default
        return obj[key]

    def number(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise self.fail(field, f"not finite ({value})")
        return float(value)

    def integer(self, value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, got {value!r}")
        return value

    def vector(self, value: Any, length: int, field: str, what: str) -> np.ndarray:
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list of {length} numbers ({what})")
        if len(value) != length:
            raise self.fail(field, f"expected {length} values ({what}), got {len(value)}")
        return np.asarray([self.number(v, f"{field}[{i}]") for i, v in enumerate(value)], dtype=np.float64)

    def rigid(self, value: Any, field: str) -> np.ndarray:
        """A 4x4 [R t; 0 0 0 1] with R a proper rotation."""
        if not (isinstance(value, list) and len(value) == 4 and all(isinstance(r, list) and len(r) == 4 for r in value)):
            raise self.fail(field, "expected a 4x4 matrix (list of 4 rows of 4 numbers)")
        m = np.asarray([[self.number(v, f"{field}[{i}][{j}]") for j, v in enumerate(row)] for i, row in enumerate(value)])
        if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
            raise self.fail(field, f"last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        R = m[:3, :3]
        err = float(np.abs(R.T @ R - np.eye(3)).max())
        if err > RIGID_TOLERANCE or np.linalg.det(R) < 0:
            raise self.fail(field, f"rotation is not proper rigid (|R^T R - I| = {err:.2g}, det = {np.linalg.det(R):.3g})")
        return m

    def file(self, root: Path, value: Any, field: str, check: bool) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"expected a relative path, got {value!r}")
        path = root / value
        if check and not path.is_file():
            raise self.fail(field, f"file not found: {path}")
        return path


def _valid_box(r, frame: dict, where: str, w: int, h: int) -> tuple[int, int, int, int] | None:
    """A frame's ``valid_box`` [x0, y0, x1, y1] (pixels; evaluation counts only these), checked against its size."""
    box = frame.get("valid_box")
    if box is None:
        return None
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in box):
        raise r.fail(f"{where}.valid_box", f"expected [x0, y0, x1, y1] integer pixels, got {box!r}")
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise r.fail(f"{where}.valid_box", f"{box} is not a non-empty box inside the {w} x {h} image")
    return x0, y0, x1, y1


def load_subject(path: str | Path, check_files: bool = True) -> Subject:
    """Read and validate ``path`` (a subject folder or its transforms.json)."""
    path = Path(path)
    tpath = path if path.suffix == ".json" else path / "transforms.json"
    if not tpath.is_file():
        raise SubjectError(f"{tpath}: no such file (a subject folder holds transforms.json; see docs/subject-format.md)")
    root = tpath.parent
    try:
        meta = json.loads(tpath.read_text())
    except json.JSONDecodeError as e:
        raise SubjectError(f"{tpath}: broken JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    r = _Reader(tpath)
    if not isinstance(meta, dict):
        raise r.fail("(top level)", "expected a JSON object")
    version = r.get(meta, "format_version", "format_version")
    if version != FORMAT_VERSION:
        raise r.fail("format_version", f"expected {FORMAT_VERSION}, got {version!r}")
    space = r.get(meta, "expression_space", "expression_space")
    if not isinstance(space, dict) or not isinstance(space.get("labels"), list) or not space["labels"]:
        raise r.fail("expression_space", 'expected {"name": ..., "labels": [names]} with at least one label')
    labels = [str(x) for x in space["labels"]]
    if len(set(labels)) != len(labels):
        raise r.fail("expression_space.labels", "labels must be unique")
    d_exp = len(labels)
    frames = r.get(meta, "frames", "frames")
    if not isinstance(frames, list) or not frames:
        raise r.fail("frames", "expected a non-empty list")

    n = len(frames)
    image_paths, mask_paths, region_paths, mesh_paths, sequences, valid_boxes = [], [], [], [], [], []
    c2w = np.zeros((n, 4, 4))
    intr = np.zeros((n, 4))
    sizes = np.zeros((n, 2), dtype=np.int64)
    expressions = np.zeros((n, d_exp), dtype=np.float32)
    poses = np.zeros((n, 4, 4), dtype=np.float32)
    timesteps = np.zeros(n, dtype=np.int64)
    cameras = np.zeros(n, dtype=np.int64)
    seen: dict[tuple, int] = {}
    for i, fr in enumerate(frames):
        f = f"frames[{i}]"
        if not isinstance(fr, dict):
            raise r.fail(f, "expected an object")
        image_paths.append(r.file(root, r.get(fr, "file_path", f"{f}.file_path"), f"{f}.file_path", check_files))
        optional = []
        for key in ("fg_mask_path", "region_path", "mesh_path"):
            optional.append(r.file(root, fr[key], f"{f}.{key}", check_files) if fr.get(key) is not None else None)
        mask_paths.append(optional[0])
        region_paths.append(optional[1])
        mesh_paths.append(optional[2])
        c2w[i] = r.rigid(r.get(fr, "transform_matrix", f"{f}.transform_matrix"), f"{f}.transform_matrix")
        values = []
        for key in INTRINSIC_KEYS:
            value = fr.get(key, meta.get(key))
            if value is None:
                raise r.fail(f"{f}.{key}", "missing (give it at the top level or per frame)")
            values.append(r.number(value, f"{f}.{key}" if key in fr else key))
        fx, fy, cx, cy, w, h = values
        if fx <= 0 or fy <= 0 or w < 1 or h < 1 or w != int(w) or h != int(h):
            raise r.fail(f"{f}.intrinsics", f"need fl_x, fl_y > 0 and integer w, h >= 1 (got {values})")
        intr[i] = (fx, fy, cx, cy)
        sizes[i] = (int(w), int(h))
        valid_boxes.append(_valid_box(r, fr, f, int(w), int(h)))
        expressions[i] = r.vector(r.get(fr, "expression", f"{f}.expression"), d_exp, f"{f}.expression", "expression_space.labels")
        poses[i] = r.rigid(r.get(fr, "head_pose", f"{f}.head_pose"), f"{f}.head_pose")
        timesteps[i] = r.integer(r.get(fr, "timestep_index", f"{f}.timestep_index"), f"{f}.timestep_index")
        cameras[i] = r.integer(r.get(fr, "camera_index", f"{f}.camera_index"), f"{f}.camera_index")
        seq = r.get(fr, "sequence", f"{f}.sequence")
        if not isinstance(seq, str) or not seq:
            raise r.fail(f"{f}.sequence", f"expected a non-empty name, got {seq!r}")
        sequences.append(seq)
        key = (seq, int(timesteps[i]), int(cameras[i]))
        if key in seen:
            raise r.fail(f, f"duplicates frames[{seen[key]}] (sequence {seq!r}, timestep {key[1]}, camera {key[2]})")
        seen[key] = i

    template = meta.get("template_mesh")
    template_path = r.file(root, template, "template_mesh", check_files) if template is not None else None
    splits = r.get(meta, "splits", "splits")
    subject = Subject(
        root=root,
        name=str(meta.get("subject", root.name)),
        expression_space=str(space.get("name", "unnamed")),
        expression_labels=labels,
        image_paths=image_paths,
        mask_paths=mask_paths,
        region_paths=region_paths,
        valid_boxes=valid_boxes,
        mesh_paths=mesh_paths,
        c2w=c2w,
        intrinsics=intr,
        image_sizes=sizes,
        expressions=expressions,
        head_poses=poses,
        timesteps=timesteps,
        camera_indices=cameras,
        sequences=sequences,
        template_mesh=template_path,
        splits=splits,
        region_labels=_region_labels(meta, r, any(p is not None for p in region_paths)),
    )
    _check_splits(subject, r)
    return subject


def _region_labels(meta: dict, r: _Reader, has_region_maps: bool) -> dict[str, int]:
    """Top-level ``region_labels`` {name: value in the region maps}; required with region maps."""
    labels = meta.get("region_labels")
    if labels is None:
        if has_region_maps:
            raise r.fail("region_labels", "frames give region_path, so name the values of the region maps ({name: integer})")
        return {}
    if not isinstance(labels, dict) or not labels:
        raise r.fail("region_labels", "expected a non-empty object {name: integer}")
    return {str(k): r.integer(v, f"region_labels.{k}") for k, v in labels.items()}


def _check_splits(subject: Subject, r: _Reader) -> None:
    splits = subject.splits
    if not isinstance(splits, dict):
        raise r.fail("splits", "expected an object of split selectors")
    for required in ("train", "test"):
        if required not in splits:
            raise r.fail(f"splits.{required}", "missing")
    known_seq, known_cam = set(subject.sequences), set(subject.camera_ids())
    for name, sel in splits.items():
        where = f"splits.{name}"
        if not isinstance(sel, dict) or not sel:
            raise r.fail(where, f"expected a selector with any of {', '.join(SELECTOR_KEYS)}")
        for key, values in sel.items():
            if key not in SELECTOR_KEYS:
                raise r.fail(f"{where}.{key}", f"unknown selector (use {', '.join(SELECTOR_KEYS)})")
            if not isinstance(values, list) or not values:
                raise r.fail(f"{where}.{key}", "expected a non-empty list")
        for s in sel.get("sequences", []):
            if s not in known_seq:
                raise r.fail(f"{where}.sequences", f"unknown sequence {s!r}")
        for c in sel.get("cameras", []):
            if c not in known_cam:
                raise r.fail(f"{where}.cameras", f"unknown camera_index {c!r}")
        for i in sel.get("frames", []):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < subject.num_frames:
                raise r.fail(f"{where}.frames", f"frame index {i!r} out of range 0..{subject.num_frames - 1}")
        subject.split(name)  # non-empty
    overlap = np.intersect1d(subject.split("train"), subject.split("test"))
    if len(overlap):
        raise r.fail("splits", f"train and test share {len(overlap)} frames (first: frames[{overlap[0]}])")


#: The fields of a frame that name a file, relative to the subject's folder.
FRAME_FILE_KEYS = ("file_path", "fg_mask_path", "region_path", "mesh_path")


def transforms_moved_to(subject: Subject, out: str | Path) -> dict:
    """``subject``'s transforms.json with every file path (frames' and the template mesh) made
    relative to ``out``: a copy of the subject written there still finds the same files."""
    target = Path(out).resolve()
    meta = json.loads(subject.transforms_path.read_text())

    def moved(path: str) -> str:
        return os.path.relpath((subject.root / path).resolve(), target)

    for frame in meta["frames"]:
        for key in FRAME_FILE_KEYS:
            if frame.get(key) is not None:
                frame[key] = moved(frame[key])
    if meta.get("template_mesh") is not None:
        meta["template_mesh"] = moved(meta["template_mesh"])
    return meta


def write_transforms(root: str | Path, transforms: dict) -> Path:
    """Write ``root``/transforms.json atomically, then validate it (files are not checked)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".transforms.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(transforms, f, indent=1)
        os.replace(tmp, root / "transforms.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a failed dump must not leave a half-written file behind
        raise
    load_subject(root, check_files=False)
    return root / "transforms.json"
