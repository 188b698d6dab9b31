"""Stage I: a neural SDF of the canonical head, extracted by marching tetrahedra, deformed by
expression and pose networks, fitted to the subject's images and masks, guided by the prior.

The mesh is rendered with the project's Gaussian rasteriser: points sampled on its faces
(barycentric, so differentiable in the vertices) become small flat Gaussians coloured from
the SDF features; the accumulated alpha is the silhouette. This runs on a CPU and needs no
mesh rasteriser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from torch import Tensor, nn

from eavatar.avatar.generator import Branch, GeneratorConfig, positional_encoding
from eavatar.avatar.pose import matrix_to_quat, pose_code
from eavatar.data.frames import ground_truth, unit_float
from eavatar.data.subject import Subject
from eavatar.geometry import losses as L
from eavatar.geometry.dmtet import cube_tet_grid, marching_tets
from eavatar.geometry.prior import carving_box, head_space_cameras
from eavatar.geometry.sdf import SDFConfig, SDFNetwork
from eavatar.render import Camera, RenderOutput, rasterize


@dataclass
class PriorLossConfig:
    """Which prior terms Stage I uses (params.yaml ``geometry.prior_loss``)."""

    paper: bool = True
    """The paper's L_mesh (centroid and mean radius), weight ``mesh_weight``."""
    surface: bool = True
    """Chamfer + normal term to the prior surface (ours, stronger), annealed to zero."""
    surface_weight: float = 1.0
    """Weight of the surface term at step 0."""
    normal_weight: float = 0.1
    """Share of the normal disagreement inside the surface term."""
    anneal: float = 0.5
    """Fraction of the iterations over which the surface weight decays (cosine) to zero."""
    samples: int = 3000
    """Surface points per mesh for the surface term."""


@dataclass
class StageIConfig:
    """Stage I optimisation (params.yaml ``geometry``). Paper: Adam lr 1e-3, 10,000 iterations, batch 4."""

    iterations: int = 400
    """Optimisation steps (paper: 10,000 on a GPU; this default fits 2 CPU cores in a few minutes)."""
    batch_size: int = 2
    """Frames per step (paper: 4)."""
    lr: float = 1e-3
    """Adam learning rate of every network (paper: 1e-3)."""
    seed: int = 0
    """Seed of the frame order, the surface samples and the networks."""
    grid_resolution: int = 32
    """Cubes per side of the DMTet grid (6 tetrahedra each)."""
    grid_margin: float = 1.25
    """With a prior: grid half extent = margin x the prior's largest half size."""
    init_radius: float = 0.6
    """Without a prior: radius of the initial sphere, as a fraction of the grid half extent."""
    image_scale: float = 0.5
    """Stage I renders at this fraction of the subject's resolution (silhouettes and coarse colour suffice)."""
    num_samples: int = 3000
    """Flat Gaussians sampled on the mesh per rendered frame."""
    splat_scale: float = 1.0
    """Tangent-plane sigma of a splat, in units of the mean sample spacing."""
    splat_opacity: float = 0.9
    """Opacity of every splat."""
    erosion: int = 1
    """Pixels the rendered alpha is eroded by (min filter) before L_rgb and L_sil: splats seen edge-on at the
    limb pile up into a ~1 px dilated silhouette, which would shrink the mesh (synthetic subject, true meshes
    rendered this way: alpha/mask area 1.15 without, 1.01 with 1 px)."""
    rgb_weight: float = 1.0
    """L_rgb, L1 to the masked image (paper: 1.0)."""
    sil_weight: float = 0.1
    """L_sil, 1 - soft IoU with the mask (paper: 0.1)."""
    offset_weight: float = 0.01
    """L_offset, squared expression and pose offsets (paper: 0.01)."""
    lmk_weight: float = 0.1
    """L_lmk, |f_sdf| at canonical 3D landmarks, when given (paper: 0.1)."""
    lap_weight: float = 100.0
    """L_lap, uniform Laplacian of the deformed mesh (paper: 100), lengths in units of 64 grid cells."""
    mesh_weight: float = 1.0
    """L_mesh, the paper's prior term (paper: 1.0)."""
    prior_loss: PriorLossConfig = field(default_factory=PriorLossConfig)
    """Which prior terms are on."""
    sdf: SDFConfig = field(default_factory=SDFConfig)
    """f_sdf's size and initialisation."""
    deform: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(hidden_dim=64, num_layers=2, pos_frequencies=4))
    """Expression and pose branches (eavatar.avatar.generator.Branch) for the mesh vertices."""
    log_every: int = 25
    """Print a line every this many steps."""


@dataclass
class MeshFrame:
    """The mesh at one frame, in head space, with what the losses need."""

    vertices: Tensor  # [V, 3] head space, deformed
    colors: Tensor  # [V, 3] in [0, 1]
    exp_offsets: Tensor  # [V, 3] in units of the grid half extent
    pose_offsets: Tensor  # [V, 3]


class GeometryModel(nn.Module):
    """f_sdf + DMTet extraction + expression/pose deformation of the extracted mesh."""

    def __init__(self, d_exp: int, cfg: StageIConfig, center: Tensor, half_extent: float):
        super().__init__()
        self.cfg = cfg
        self.d_exp = d_exp
        self.sdf = SDFNetwork(cfg.sdf, center, half_extent)
        grid = cube_tet_grid(cfg.grid_resolution, torch.as_tensor(center, dtype=torch.float32), half_extent)
        self.register_buffer("grid_vertices", grid.vertices, persistent=False)
        self.register_buffer("grid_tets", grid.tets, persistent=False)
        pos_dim = 3 + 6 * cfg.deform.pos_frequencies
        self.expression = Branch(d_exp, pos_dim, cfg.sdf.feature_dim, cfg.deform)
        self.pose = Branch(6, pos_dim, cfg.sdf.feature_dim, cfg.deform) if cfg.deform.pose_branch else None

    @property
    def center(self) -> Tensor:
        return self.sdf.center

    @property
    def half_extent(self) -> Tensor:
        return self.sdf.half_extent

    def extract(self) -> tuple[Tensor, Tensor]:
        """Canonical mesh: vertices [M, 3] (differentiable in f_sdf) and faces [F, 3].

        f_sdf runs without gradient over the whole grid, then with gradient only at the
        vertices of tetrahedra the surface crosses: the same mesh at a fraction of the cost.
        """
        with torch.no_grad():
            sdf = self.sdf(self.grid_vertices)[0]
            inside = sdf < 0
            count = inside[self.grid_tets].sum(1)
            active = torch.unique(self.grid_tets[(count > 0) & (count < 4)])
        sdf = sdf.index_put((active,), self.sdf(self.grid_vertices[active])[0])
        return marching_tets(self.grid_vertices, self.grid_tets, sdf)

    def frame(self, vertices: Tensor, features: Tensor, expression: Tensor, head_pose: Tensor) -> MeshFrame:
        """Deform canonical ``vertices`` [V, 3] with features [V, F] at theta [d_exp] and pose [4, 4]."""
        enc = positional_encoding((vertices - self.center) / self.half_extent, self.cfg.deform.pos_frequencies)
        exp_dx, attrs = self.expression(enc, features, expression)
        pose_dx, color = torch.zeros_like(exp_dx), attrs["color"]
        if self.pose is not None:
            pose_dx, pose_attrs = self.pose(enc, features, pose_code(head_pose))
            color = color + pose_attrs["color"]
        moved = vertices + self.half_extent * (exp_dx + pose_dx)
        return MeshFrame(moved, torch.sigmoid(color), exp_dx, pose_dx)


def sample_surface(vertices: Tensor, faces: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Area-weighted points on a mesh: face ids [n], barycentrics [n, 3] (no gradient), face normals [F, 3], areas [F]."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    cross = torch.cross(v1 - v0, v2 - v0, dim=-1)
    area = 0.5 * cross.norm(dim=-1)
    with torch.no_grad():
        face = torch.multinomial(area.detach() + 1e-12, n, replacement=True, generator=generator)
        r1, r2 = torch.rand(n, generator=generator).sqrt(), torch.rand(n, generator=generator)
        bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], -1)
    return face, bary, F.normalize(cross, dim=-1), area


def interpolate(values: Tensor, faces: Tensor, face: Tensor, bary: Tensor) -> Tensor:  # [V, D] -> [n, D]
    return (values[faces[face]] * bary[..., None]).sum(1)


def normal_frames(normals: Tensor) -> Tensor:  # [n, 3] unit -> [n, 4] wxyz with local z = normal
    helper = torch.where(normals[:, :1].abs() < 0.9, torch.tensor([1.0, 0.0, 0.0]).to(normals), torch.tensor([0.0, 1.0, 0.0]).to(normals))
    t1 = F.normalize(torch.cross(helper, normals, dim=-1), dim=-1)
    t2 = torch.cross(normals, t1, dim=-1)
    return matrix_to_quat(torch.stack([t1, t2, normals], -1))


def erode(out: RenderOutput, background: Tensor, pixels: int) -> tuple[Tensor, Tensor]:
    """(rgb [H, W, 3], alpha [H, W]) with alpha min-filtered by ``pixels`` and the colour re-composited over it."""
    alpha = out.alpha[..., 0]
    if pixels <= 0:
        return out.rgb, alpha
    k = 2 * pixels + 1
    eroded = -F.max_pool2d(-alpha[None, None], k, stride=1, padding=pixels)[0, 0]
    color = (out.rgb - (1 - out.alpha) * background) / out.alpha.clamp_min(1e-6)  # un-premultiplied
    return color * eroded[..., None] + (1 - eroded[..., None]) * background, eroded


def render_mesh(
    vertices: Tensor, faces: Tensor, colors: Tensor, camera: Camera, background: Tensor, cfg: StageIConfig, generator: torch.Generator
) -> RenderOutput:
    """Render a world-space mesh [V, 3] / [F, 3] with vertex colours [V, 3] as flat Gaussians on its surface."""
    face, bary, normals, area = sample_surface(vertices, faces, cfg.num_samples, generator)
    means = interpolate(vertices, faces, face, bary)
    spacing = float(torch.sqrt(area.detach().sum() / cfg.num_samples))
    sigma = cfg.splat_scale * spacing
    n = len(face)
    scales = torch.tensor([sigma, sigma, 0.1 * sigma]).expand(n, 3)
    opacities = torch.full((n,), cfg.splat_opacity)
    return rasterize(means, normal_frames(normals[face]), scales, opacities, interpolate(colors, faces, face, bary), camera, background=background)


# -- data -------------------------------------------------------------------------------------
class FrameCache:
    """Training images and masks at Stage I's resolution, loaded once each; cameras in world space."""

    def __init__(self, subject: Subject, scale: float, background: Tensor):
        self.subject, self.scale, self.background = subject, scale, background
        self.cache: dict[int, tuple[Tensor, Tensor, Camera]] = {}

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Camera]:
        if i not in self.cache:
            s = self.subject
            if s.mask_paths[i] is None:
                raise ValueError(f"{s.transforms_path}: frames[{i}].fg_mask_path: Stage I needs foreground masks (L_sil)")
            image = unit_float(np.asarray(iio.imread(s.image_paths[i])))
            image = image[..., None] if image.ndim == 2 else image
            mask = unit_float(np.asarray(iio.imread(s.mask_paths[i])))
            mask = mask[..., 0] if mask.ndim == 3 else mask
            w, h = (int(round(v * self.scale)) for v in s.image_sizes[i])
            image = F.interpolate(image.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(1, 2, 0)
            mask = F.interpolate(mask[None, None], size=(h, w), mode="area")[0, 0]
            rgb = ground_truth(image, mask, self.background)  # any backdrop -> ours; the soft mask at this scale
            fx, fy, cx, cy = s.intrinsics[i] * self.scale
            camera = Camera.from_c2w_opengl(torch.tensor(s.c2w[i], dtype=torch.float32), fx, fy, cx, cy, w, h)
            self.cache[i] = (rgb, mask, camera)
        return self.cache[i]


# -- training ---------------------------------------------------------------------------------
def grid_box(subject: Subject, prior: trimesh.Trimesh | None, cfg: StageIConfig) -> tuple[np.ndarray, float]:
    """Centre and half extent of the tet grid: around the prior, else the region all cameras see."""
    if prior is not None:
        lo, hi = prior.bounds
        return (lo + hi) / 2, float(cfg.grid_margin * (hi - lo).max() / 2)
    return carving_box(head_space_cameras(subject, subject.split("train")[:64]))


def initial_sphere(prior: trimesh.Trimesh | None, center: np.ndarray, half: float, cfg: StageIConfig) -> tuple[np.ndarray, float]:
    """The sphere f_sdf starts from: the prior's centroid and mean radius, else the grid centre."""
    if prior is None:
        return center, cfg.init_radius * half
    v = np.asarray(prior.vertices)
    c = v.mean(0)
    return c, float(np.linalg.norm(v - c, axis=1).mean())


def frame_terms(
    model: GeometryModel, subject: Subject, frames: FrameCache, i: int, verts: Tensor, features: Tensor, faces: Tensor, gen: torch.Generator
) -> dict[str, Tensor]:
    """Weighted L_rgb, L_sil, L_offset, L_lap of frame ``i`` for the canonical mesh ``verts`` [V, 3] / ``faces`` [F, 3]."""
    cfg = model.cfg
    rgb, mask, camera = frames[i]
    head_pose = torch.tensor(subject.head_poses[i], dtype=torch.float32)
    fr = model.frame(verts, features, torch.tensor(subject.expressions[i]), head_pose)
    world = fr.vertices @ head_pose[:3, :3].T + head_pose[:3, 3]
    pred_rgb, pred_alpha = erode(render_mesh(world, faces, fr.colors, camera, frames.background, cfg, gen), frames.background, cfg.erosion)
    # A marching-tets mesh is jagged by a fraction of a cell, so its Laplacian scales with the cell
    # size squared; measuring it in units of 64 cells (= h on a 128^3 grid, DMTet's usual size)
    # keeps the paper's weight meaningful at our coarser CPU grids.
    lap_unit = 64 * 2 * model.half_extent / cfg.grid_resolution
    return {
        "rgb": cfg.rgb_weight * (pred_rgb - rgb).abs().mean(),
        "sil": cfg.sil_weight * L.silhouette_loss(pred_alpha, mask),
        "offset": cfg.offset_weight * L.offset_loss(fr.exp_offsets, fr.pose_offsets),
        "lap": cfg.lap_weight * L.laplacian_loss(fr.vertices / lap_unit, faces),
    }


@dataclass
class StageIResult:
    model: GeometryModel
    history: list[dict]
    seconds: float
    landmarks_used: bool


def train_stage1(
    subject: Subject,
    cfg: StageIConfig,
    prior: trimesh.Trimesh | None = None,
    landmarks: Tensor | None = None,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    log: Callable[[str], None] = print,
) -> StageIResult:
    """Fit Stage I to the training split of ``subject``; ``prior`` (head space) enables the prior terms.

    ``landmarks`` [L, 3] are canonical 3D landmarks for L_lmk; the subject format carries none
    yet, so L_lmk is skipped when they are absent (and the result says so).

    Bit-reproducible: torch's deterministic kernels are on for the fit (without them two runs
    on 2 CPU threads parted after one step, some accumulation summing in thread order; measured
    cost: none over 60 steps), then the caller's setting is restored.
    """
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True)
    try:
        return _fit_stage1(subject, cfg, prior, landmarks, background, log)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _fit_stage1(
    subject: Subject,
    cfg: StageIConfig,
    prior: trimesh.Trimesh | None,
    landmarks: Tensor | None,
    background: tuple[float, float, float],
    log: Callable[[str], None],
) -> StageIResult:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    center, half = grid_box(subject, prior, cfg)
    model = GeometryModel(subject.d_exp, cfg, torch.tensor(center, dtype=torch.float32), half)
    sphere_c, sphere_r = initial_sphere(prior, center, half, cfg)
    model.sdf.fit_sphere(torch.tensor(sphere_c, dtype=torch.float32), sphere_r, seed=cfg.seed)
    bg = torch.tensor(background, dtype=torch.float32)
    frames = FrameCache(subject, cfg.image_scale, bg)
    train = subject.split("train")
    h = model.half_extent
    prior_v = torch.tensor(np.asarray(prior.vertices), dtype=torch.float32) if prior is not None else None
    surface = None
    if prior is not None and cfg.prior_loss.surface:
        pts, fid = trimesh.sample.sample_surface(prior, cfg.prior_loss.samples, seed=cfg.seed)
        nrm = prior.face_normals[fid]
        surface = L.SurfacePrior(torch.tensor(pts, dtype=torch.float32) / h, torch.tensor(nrm, dtype=torch.float32), cfg.prior_loss.normal_weight)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history, start = [], time.time()
    for step in range(cfg.iterations):
        verts, faces = model.extract()
        if len(faces) == 0:
            raise RuntimeError(f"Stage I step {step}: the SDF has no zero crossing in the grid (lower geometry.lr or check the prior)")
        features = model.sdf(verts)[1]
        terms: dict[str, Tensor] = {}
        batch = train[torch.randint(len(train), (cfg.batch_size,), generator=gen).numpy()]
        for i in batch:
            for k, v in frame_terms(model, subject, frames, int(i), verts, features, faces, gen).items():
                terms[k] = terms.get(k, 0.0) + v / len(batch)
        if landmarks is not None:
            terms["lmk"] = cfg.lmk_weight * L.landmark_loss(lambda x: model.sdf(x)[0] / h, landmarks)
        if prior_v is not None and cfg.prior_loss.paper:
            terms["mesh"] = cfg.mesh_weight * L.mesh_prior_loss(verts / h, prior_v / h)
        if surface is not None:
            w = cfg.prior_loss.surface_weight * L.cosine_anneal(step, int(cfg.prior_loss.anneal * cfg.iterations))
            if w > 0:
                face, bary, normals, _ = sample_surface(verts / h, faces, cfg.prior_loss.samples, gen)
                terms["surface"] = w * surface(interpolate(verts / h, faces, face, bary), normals[face])
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        row = {"step": step, "loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}, "vertices": len(verts), "faces": len(faces)}
        history.append(row)
        if step % cfg.log_every == 0 or step == cfg.iterations - 1:
            log(f"stage I {step:5d}/{cfg.iterations}  " + "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step"))
    return StageIResult(model, history, time.time() - start, landmarks is not None)


@torch.no_grad()
def canonical_mesh(model: GeometryModel) -> trimesh.Trimesh:
    """The canonical (zero-expression) mesh with its neutral vertex colours, in head space."""
    verts, faces = model.extract()
    fr = model.frame(verts, model.sdf(verts)[1], torch.zeros(model.d_exp), torch.eye(4))
    rgba = np.concatenate([np.round(fr.colors.numpy() * 255), np.full((len(verts), 1), 255)], 1).astype(np.uint8)
    return trimesh.Trimesh(verts.numpy(), faces.numpy(), vertex_colors=rgba, process=False)


@torch.no_grad()
def expression_mesh(model: GeometryModel, expression: Tensor, head_pose: Tensor) -> trimesh.Trimesh:
    """The head-space mesh at expression [d_exp] (pose offsets of ``head_pose`` [4, 4] included, not the rigid pose)."""
    verts, faces = model.extract()
    fr = model.frame(verts, model.sdf(verts)[1], expression, head_pose)
    return trimesh.Trimesh(fr.vertices.numpy(), faces.numpy(), process=False)


def save_geometry(path, model: GeometryModel, cfg: StageIConfig) -> None:
    from dataclasses import asdict

    torch.save({"config": asdict(cfg), "d_exp": model.d_exp, "center": model.center, "half_extent": float(model.half_extent), "state": model.state_dict()}, path)


def load_geometry(path) -> GeometryModel:
    from eavatar.config import apply_overrides

    blob = torch.load(path, map_location="cpu", weights_only=False)
    cfg = apply_overrides(StageIConfig(), blob["config"], str(path))
    model = GeometryModel(blob["d_exp"], cfg, blob["center"], blob["half_extent"])
    model.load_state_dict(blob["state"])
    return model


