"""Generative geometry prior providers: where the coarse head mesh of Stage I comes from.

Three providers behind one function, :func:`make_prior`, chosen by params.yaml ``prior.provider``:

* ``file``: a mesh (OBJ/PLY/GLB/...) that an image-to-3D generator produced elsewhere
  (TRELLIS in the paper); it lives in the generator's own frame and is aligned afterwards.
* ``generator``: run such a generator here, when its package and its weights are installed
  locally. An optional dependency: nothing is ever downloaded.
* ``visual_hull``: the offline default. Carved from the subject's own training masks, so it
  needs no weights and is already in head space (see docs/geometry.md for what it is not).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import trimesh

from eavatar.data.subject import Subject
from eavatar.errors import EAvatarError
from eavatar.geometry.align import AlignConfig
from eavatar.render import Camera
from eavatar.render.device import default_device

PROVIDERS = ("visual_hull", "file", "generator")
GENERATORS = {"trellis": "trellis"}  # generator name -> Python package that provides it


class PriorError(EAvatarError, ValueError):
    """A prior that cannot be made, naming the file or params field at fault and the fix."""


@dataclass
class VisualHullConfig:
    """Shape-from-silhouette carving of the training masks (the offline prior)."""

    resolution: int = 96
    """Voxels per side of the carving grid."""
    views_per_camera: int = 6
    """Most-neutral training frames used per camera (expressions change the silhouette a little)."""
    mask_threshold: float = 0.5
    """A voxel survives a view when the mask there is at least this."""
    smoothing: float = 1.0
    """Gaussian blur (voxels) of the occupancy before marching cubes; 0 keeps the blocky hull."""


@dataclass
class GeneratorConfig:
    """An image-to-3D generator run locally (TRELLIS in the paper, arXiv 2412.01506)."""

    name: str = "trellis"
    """Which generator; its Python package must be importable."""
    weights: str = ""
    """Local folder with the generator's pretrained pipeline (TRELLIS: pipeline.json + ckpts/)."""
    seed: int = 0
    """Sampling seed of the generator."""


@dataclass
class PriorConfig:
    """params.yaml ``prior``: which provider, and its settings."""

    provider: str = "visual_hull"
    """visual_hull (offline default) | file | generator."""
    mesh_file: str = ""
    """Mesh from a generator run elsewhere (provider: file)."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """provider: generator."""
    visual_hull: VisualHullConfig = field(default_factory=VisualHullConfig)
    """provider: visual_hull; also the default alignment target of the other providers."""
    align: AlignConfig = field(default_factory=AlignConfig)
    """How a file or generator mesh is registered to the subject's head space."""

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise PriorError(f"prior.provider: expected one of {', '.join(PROVIDERS)}, got {self.provider!r}")


def load_prior_mesh(path: str | Path, field_name: str = "prior.mesh_file") -> trimesh.Trimesh:
    """One triangle mesh from any format trimesh reads (a GLB scene is concatenated)."""
    path = Path(path) if str(path) else None
    if path is None:
        raise PriorError(f"{field_name}: empty; set it to the OBJ/PLY/GLB mesh your image-to-3D generator produced")
    if not path.is_file():
        raise PriorError(
            f"{field_name}: file not found: {path}. Run the generator (TRELLIS in the paper) on a frontal image of the "
            f"subject, copy its mesh here, or set prior.provider: visual_hull for the offline prior"
        )
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as err:  # noqa: BLE001 - any parser failure becomes an error naming the file
        raise PriorError(f"{field_name}: {path}: cannot be read as a mesh ({err})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise PriorError(f"{field_name}: {path}: holds no triangles")
    return mesh


def prior_input_frame(subject: Subject) -> int:
    """The training frame a generator sees: the most neutral expression, seen from the most frontal camera."""
    train = subject.split("train")
    head_fwd = subject.head_poses[train][:, :3, 2]  # the face looks toward head +z
    cam_back = subject.c2w[train][:, :3, 2]  # OpenGL: the camera looks along -z, so +z points back at the viewer
    frontal = (head_fwd * cam_back).sum(-1)
    near_frontal = np.nonzero(frontal >= frontal.max() - 0.05)[0]
    return int(train[near_frontal[np.argmin(np.linalg.norm(subject.expressions[train[near_frontal]], axis=1))]])


def check_generator(cfg: GeneratorConfig) -> Path:
    """The generator's local weights folder, or an error saying what is missing and how to provide it."""
    if cfg.name not in GENERATORS:
        raise PriorError(f"prior.generator.name: unknown generator {cfg.name!r} (known: {', '.join(GENERATORS)})")
    if not cfg.weights:
        raise PriorError(
            "prior.generator.weights: empty. Set it to a local folder holding the TRELLIS-image-large pipeline "
            "(pipeline.json and ckpts/), copied from a machine that has it; this project never downloads weights. "
            "Or run the generator elsewhere and use prior.provider: file"
        )
    weights = Path(cfg.weights)
    if not (weights / "pipeline.json").is_file():
        raise PriorError(
            f"prior.generator.weights: {weights / 'pipeline.json'} not found; the folder must hold the generator's "
            "pretrained pipeline (pipeline.json and ckpts/). This project never downloads weights"
        )
    package = GENERATORS[cfg.name]
    if importlib.util.find_spec(package) is None:
        raise PriorError(
            f"prior.generator.name: {cfg.name}: the Python package {package!r} is not installed. Install TRELLIS "
            "(arXiv 2412.01506) from its source repository with its setup script into this environment (it needs CUDA), "
            "or run it elsewhere and set prior.provider: file with prior.mesh_file"
        )
    return weights


def run_generator(subject: Subject, cfg: GeneratorConfig) -> trimesh.Trimesh:
    """Run the locally installed generator on the subject's most frontal neutral frame (RGBA, mask as alpha)."""
    weights = check_generator(cfg)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder only; never reach a hub
    from PIL import Image
    from trellis.pipelines import TrellisImageTo3DPipeline  # type: ignore[import-not-found]

    i = prior_input_frame(subject)
    rgb = iio.imread(subject.image_paths[i])[..., :3]
    alpha = iio.imread(subject.mask_paths[i]) if subject.mask_paths[i] is not None else np.full(rgb.shape[:2], 255, np.uint8)
    image = Image.fromarray(np.concatenate([rgb, alpha[..., :1] if alpha.ndim == 3 else alpha[..., None]], -1))
    pipeline = TrellisImageTo3DPipeline.from_pretrained(str(weights))
    pipeline.to(default_device())
    out = pipeline.run(image, seed=cfg.seed, formats=["mesh"])
    mesh = out["mesh"][0]
    return trimesh.Trimesh(mesh.vertices.detach().cpu().numpy(), mesh.faces.detach().cpu().numpy(), process=True)


# -- visual hull ------------------------------------------------------------------------------
def head_space_cameras(subject: Subject, frames: np.ndarray) -> list[Camera]:
    """Cameras of ``frames`` expressed in head space (world-from-head pose undone)."""
    cams = []
    for i in frames:
        c2w_head = np.linalg.inv(subject.head_poses[i].astype(np.float64)) @ subject.c2w[i]
        fx, fy, cx, cy = subject.intrinsics[i]
        w, h = subject.image_sizes[i]
        cams.append(Camera.from_c2w_opengl(torch.tensor(c2w_head, dtype=torch.float32), fx, fy, cx, cy, int(w), int(h)))
    return cams


def carving_box(cameras: list[Camera]) -> tuple[np.ndarray, float]:
    """Centre and half extent of the region every camera sees: the point nearest all optical axes,
    and the smallest half-width of a view there."""
    A, b = 1e-6 * np.eye(3), np.zeros(3)
    widths = []
    for cam in cameras:
        R = cam.viewmat[:3, :3].double().numpy()
        o = cam.camera_center.double().numpy()
        d = R[2]  # OpenCV camera +z (forward) in head space
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
    center = np.linalg.solve(A, b)
    for cam in cameras:
        depth = float(cam.viewmat[2, :3].double().numpy() @ center + cam.viewmat[2, 3].item())
        K = cam.K.double().numpy()
        widths.append(depth * min(cam.width / 2 / K[0, 0], cam.height / 2 / K[1, 1]))
    return center, float(min(widths))


def neutral_frames(subject: Subject, per_camera: int) -> np.ndarray:
    """The ``per_camera`` training frames with the smallest expression norm, for every camera."""
    train = subject.split("train")
    chosen = []
    for cam in subject.camera_ids():
        idx = train[subject.camera_indices[train] == cam]
        chosen.extend(idx[np.argsort(np.linalg.norm(subject.expressions[idx], axis=1), kind="stable")[:per_camera]])
    return np.asarray(sorted(chosen), dtype=np.int64)


def visual_hull(subject: Subject, cfg: VisualHullConfig) -> trimesh.Trimesh:
    """Carve voxels of the commonly seen box that every mask keeps; marching cubes of the result (head space)."""
    from scipy import ndimage
    from skimage.measure import marching_cubes

    frames = neutral_frames(subject, cfg.views_per_camera)
    missing = [int(i) for i in frames if subject.mask_paths[i] is None]
    if missing:
        raise PriorError(f"{subject.transforms_path}: frames[{missing[0]}].fg_mask_path: the visual-hull prior needs foreground masks")
    cameras = head_space_cameras(subject, frames)
    center, half = carving_box(cameras)
    n = cfg.resolution
    axis = np.linspace(-half, half, n)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3) + center
    pts = torch.tensor(grid, dtype=torch.float32)
    keep = torch.ones(len(pts), dtype=torch.bool)
    for cam, i in zip(cameras, frames):
        mask = torch.tensor(iio.imread(subject.mask_paths[i]), dtype=torch.float32)
        mask = (mask[..., 0] if mask.ndim == 3 else mask) / 255.0
        px, py, seen = cam.pixels(pts)
        value = torch.ones(len(pts))
        value[seen] = mask[py[seen], px[seen]]
        keep &= value >= cfg.mask_threshold
    occupancy = keep.reshape(n, n, n).numpy().astype(np.float32)
    if occupancy.sum() == 0:
        raise PriorError(f"{subject.transforms_path}: the masks of frames {frames.tolist()[:4]}... carve away everything (do the cameras and head poses agree?)")
    if cfg.smoothing > 0:
        occupancy = ndimage.gaussian_filter(occupancy, cfg.smoothing)
    occupancy = np.pad(occupancy, 1)  # closed surface where the hull touches the box
    verts, faces, _, _ = marching_cubes(occupancy, 0.5)
    verts = (verts - 1) * (2 * half / (n - 1)) - half + center
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], process=True)  # skimage faces point inward for this level
    parts = mesh.split(only_watertight=False)
    return max(parts, key=lambda m: len(m.faces)) if len(parts) > 1 else mesh


def make_prior(subject: Subject, cfg: PriorConfig) -> tuple[trimesh.Trimesh, bool]:
    """The prior mesh, and whether it is already in the subject's head space (no alignment needed)."""
    if cfg.provider == "file":
        return load_prior_mesh(cfg.mesh_file), False
    if cfg.provider == "generator":
        return run_generator(subject, cfg.generator), False
    return visual_hull(subject, cfg.visual_hull), True
