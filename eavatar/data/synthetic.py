"""The synthetic subject: a procedural head whose expressions change shape and texture.

It is the project's embedded default data: deterministic for a seed, small enough for
2 CPU cores, with everything a real capture lacks (ground-truth expression codes, meshes
and region labels). Frames are ray cast with trimesh (embree when present), a renderer
independent of the Gaussian rasteriser, so the avatar is never graded by its own renderer.

Head space: centre at the origin, y up, the face looks toward +z, about 0.2 units wide.
Texture is evaluated at each ray hit from the hit's *canonical* surface position, so it is
crisp at any mesh resolution and moves with the skin when the expression deforms it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import trimesh

from eavatar.data.subject import write_transforms

EXPRESSION_LABELS = ("jaw_open", "smile", "brow_raise", "blink_left", "blink_right", "pucker")
REGION_LABELS = {"background": 0, "skin": 1, "mouth": 2, "eyes": 3, "brows": 4, "hair": 5}
SEMI_AXES = np.array([0.085, 0.11, 0.095])  # head ellipsoid, head-space units
HEAD_HEIGHT = 2 * SEMI_AXES[1]
LIGHT = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])  # fixed in head space: shading moves with the head

# Facial layout in canonical (azimuth u, elevation e) radians; u = 0 faces +z.
EYE_U, EYE_E, EYE_R = 0.36, 0.16, 0.11
BROW_E, BROW_HALF_U, BROW_HALF_E = 0.33, 0.2, 0.035
MOUTH_E, MOUTH_HALF_U, SLIT_HALF_E, LIP_HALF_E = -0.4, 0.33, 0.03, 0.09
JAW_MAX_ANGLE = np.deg2rad(22.0)
CHEEK_U, CHEEK_E = 0.5, -0.12

SKIN = np.array([0.86, 0.66, 0.56])
LIP = np.array([0.72, 0.36, 0.38])
LIP_LINE = np.array([0.35, 0.12, 0.14])
MOUTH_INTERIOR = np.array([0.22, 0.04, 0.06])
TEETH = np.array([0.95, 0.94, 0.88])
SCLERA = np.array([0.96, 0.96, 0.94])
IRIS = np.array([0.25, 0.16, 0.1])
PUPIL = np.array([0.03, 0.03, 0.03])
BROW = np.array([0.25, 0.17, 0.12])
HAIR = np.array([0.2, 0.13, 0.09])
FRECKLE = np.array([0.6, 0.38, 0.28])
BLUSH = np.array([0.9, 0.35, 0.35])


@dataclass
class SyntheticConfig:
    """What to generate (params.yaml `synthetic`)."""

    seed: int = 0
    resolution: int = 128
    rig: str = "multiview"  # "multiview": n_cameras over the front hemisphere; "monocular": one frontal camera
    n_cameras: int = 6
    n_train_sequences: int = 6
    n_test_sequences: int = 2  # whole sequences held out for test
    timesteps_per_sequence: int = 20
    mesh_subdivisions: int = 5  # icosphere level of the head mesh (5: 10242 vertices)
    supersampling: int = 2  # rays per pixel side (anti-aliased edges and soft masks)

    def __post_init__(self) -> None:
        if self.rig not in ("multiview", "monocular"):
            raise ValueError(f"synthetic.rig: expected 'multiview' or 'monocular', got {self.rig!r}")
        for name in ("resolution", "n_cameras", "n_train_sequences", "n_test_sequences", "timesteps_per_sequence", "supersampling"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"synthetic.{name}: must be at least 1, got {getattr(self, name)}")


def _smooth_bump(d: np.ndarray, radius: float) -> np.ndarray:
    """1 at d = 0, 0 beyond ``radius``, C1 in between."""
    x = np.clip(1.0 - d / radius, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class ProceduralHead:
    """Shape and texture of the head as functions of the expression code."""

    def __init__(self, seed: int, subdivisions: int):
        rng = np.random.default_rng(seed)
        sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
        self.dirs = np.asarray(sphere.vertices)  # canonical unit directions, [V, 3]
        self.faces = np.asarray(sphere.faces)
        self.u, self.e = self._angles(self.dirs)
        self.neutral = self._neutral_shape()
        # Seeded skin detail, so the avatar has texture to fit and seeds differ.
        self.freq = rng.normal(size=(6, 3)) * 3.0
        self.phase = rng.uniform(0, 2 * np.pi, size=6)
        self.tint = rng.normal(size=(6, 3)) * 0.02
        n_spots = 70
        self.spot_u = rng.uniform(-1.1, 1.1, n_spots)
        self.spot_e = rng.uniform(-0.6, 0.5, n_spots)
        self.spot_r = rng.uniform(0.015, 0.035, n_spots)

    @staticmethod
    def _angles(dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arctan2(dirs[:, 0], dirs[:, 2]), np.arcsin(np.clip(dirs[:, 1], -1, 1))

    def _neutral_shape(self) -> np.ndarray:
        u, e = self.u, self.e
        r = np.ones(len(u))
        r += 0.16 * _smooth_bump(np.hypot(u / 0.7, (e + 0.02) / 0.9) * 0.35, 0.12)  # nose
        r += 0.05 * _smooth_bump(np.hypot(u, e + 0.5), 0.35)  # chin
        for side in (-1, 1):
            r -= 0.05 * _smooth_bump(np.hypot(u - side * EYE_U, e - EYE_E), 0.2)  # eye sockets
            r += 0.05 * _smooth_bump(np.hypot(u - side * EYE_U, e - BROW_E - 0.04), 0.18)  # brow ridge
            r += 0.06 * _smooth_bump(np.hypot(u - side * 1.55, e - 0.05), 0.22)  # ears
        r -= 0.12 * _smoothstep((-e - 0.5) / 0.6) * _smoothstep((np.cos(u) + 0.2) / 1.2)  # jaw line narrows
        return self.dirs * SEMI_AXES * r[:, None]

    # -- shape -------------------------------------------------------------------------------
    def vertices(self, expression: np.ndarray) -> np.ndarray:
        """Head-space vertex positions at an expression code [len(EXPRESSION_LABELS)]."""
        jaw, smile, brow, blink_l, blink_r, pucker = (float(x) for x in expression)
        u, e = self.u, self.e
        v = self.neutral.copy()
        front = _smoothstep((np.cos(u) - 0.2) / 0.5)
        mouth_u = _smooth_bump(np.abs(u), MOUTH_HALF_U + 0.35)
        # jaw: everything below the slit rotates about a hinge near the ears; the slit band stretches
        below = _smoothstep((MOUTH_E + SLIT_HALF_E - e) / (2 * SLIT_HALF_E)) * np.maximum(mouth_u, _smoothstep((MOUTH_E - 0.15 - e) / 0.2))
        angle = JAW_MAX_ANGLE * jaw * below
        hinge = np.array([0.0, -0.005, -0.03])
        p = v - hinge
        c, s = np.cos(angle), np.sin(angle)
        v = hinge + np.stack([p[:, 0], c * p[:, 1] - s * p[:, 2], s * p[:, 1] + c * p[:, 2]], -1)
        # the opened slit sinks inward: a cavity behind the lips
        slit = _smooth_bump(np.abs(e - MOUTH_E) / SLIT_HALF_E, 1.0) * _smooth_bump(np.abs(u) / MOUTH_HALF_U, 1.0)
        v -= (0.025 * jaw * slit)[:, None] * self.dirs * front[:, None]
        lips = _smooth_bump(np.abs(e - MOUTH_E) / (LIP_HALF_E + 0.05), 1.0) * _smooth_bump(np.abs(u) / (MOUTH_HALF_U + 0.1), 1.0)
        v[:, 2] += 0.008 * pucker * lips * front
        v[:, 0] *= 1.0 - 0.25 * pucker * lips
        for side in (-1, 1):
            corner = _smooth_bump(np.hypot(u - side * MOUTH_HALF_U, e - MOUTH_E), 0.25)
            v[:, 1] += 0.009 * smile * corner
            v[:, 2] -= 0.004 * smile * corner
            v[:, 0] += side * 0.004 * smile * corner
            cheek = _smooth_bump(np.hypot(u - side * CHEEK_U, e - CHEEK_E), 0.22)
            v += (0.04 * smile * cheek)[:, None] * self.neutral
            brow_w = _smooth_bump(np.hypot((u - side * EYE_U) / 1.6, e - BROW_E), 0.2)
            v[:, 1] += 0.008 * brow * brow_w
            blink = blink_l if side > 0 else blink_r  # the subject's left eye is at +x
            lid = _smooth_bump(np.hypot(u - side * EYE_U, e - EYE_E), EYE_R) * blink
            v += (0.04 * lid)[:, None] * self.neutral  # the closed lid bulges over the eye
        return v

    def mesh(self, expression: np.ndarray) -> trimesh.Trimesh:
        vertices = self.vertices(expression)
        colors = self.albedo(self.dirs, expression)
        rgba = np.concatenate([np.round(colors * 255), np.full((len(colors), 1), 255)], 1).astype(np.uint8)
        return trimesh.Trimesh(vertices, self.faces, vertex_colors=rgba, process=False)

    # -- texture -----------------------------------------------------------------------------
    def albedo(self, dirs: np.ndarray, expression: np.ndarray, with_regions: bool = False):
        """Albedo (and region labels) at canonical unit directions [M, 3]."""
        jaw, smile, brow, blink_l, blink_r, _ = (float(x) for x in expression)
        u, e = self._angles(dirs)
        m = len(u)
        col = np.tile(SKIN, (m, 1))
        col += np.sin(dirs @ self.freq.T + self.phase) @ self.tint  # low-frequency skin tone
        region = np.full(m, REGION_LABELS["skin"], dtype=np.uint8)
        spots = _smooth_bump(np.hypot(u[:, None] - self.spot_u, e[:, None] - self.spot_e), self.spot_r).max(1)[:, None]
        col = col * (1 - 0.6 * spots) + FRECKLE * 0.6 * spots
        # forehead wrinkles appear with raised brows
        wrinkle = brow * _smooth_bump(np.abs(u) / 0.6, 1.0) * _smooth_bump(np.abs(e - 0.55) / 0.12, 1.0)
        col *= (1 - 0.3 * wrinkle * (0.5 + 0.5 * np.cos(e * 90.0)) ** 4)[:, None]
        for side in (-1, 1):
            blush = 0.45 * smile * _smooth_bump(np.hypot(u - side * CHEEK_U, e - CHEEK_E), 0.18)[:, None]
            col = col * (1 - blush) + BLUSH * blush
            brows = (np.abs(u - side * EYE_U) < BROW_HALF_U) & (np.abs(e - BROW_E - 0.015 * np.cos((u - side * EYE_U) * 6)) < BROW_HALF_E)
            col[brows] = BROW
            region[brows] = REGION_LABELS["brows"]
            d_eye = np.hypot(u - side * EYE_U, e - EYE_E)
            eye = d_eye < EYE_R
            eye_col = np.where((d_eye < 0.045)[:, None], np.where((d_eye < 0.02)[:, None], PUPIL, IRIS), SCLERA)
            blink = blink_l if side > 0 else blink_r
            lid = eye & (e > EYE_E + EYE_R * (1 - 2.0 * blink))  # the lid comes down from above
            col[eye] = eye_col[eye]
            col[lid] = SKIN * 0.93
            col[eye & (np.abs(e - (EYE_E + EYE_R * (1 - 2.0 * blink))) < 0.012)] = BROW  # lash line
            region[eye] = REGION_LABELS["eyes"]
        # lips, and the slit between them that opens onto the mouth interior and teeth
        du, de = np.abs(u), e - MOUTH_E
        lips = (du < MOUTH_HALF_U * np.sqrt(np.clip(1 - (de / LIP_HALF_E) ** 2, 0, 1))) & (np.abs(de) < LIP_HALF_E)
        col[lips] = LIP
        slit = lips & (np.abs(de) < SLIT_HALF_E)
        t = (de[slit] + SLIT_HALF_E) / (2 * SLIT_HALF_E)  # 0 at the lower lip, 1 at the upper
        opening = _smoothstep(jaw / 0.25)
        teeth = (t > 0.72) | (t < 0.22)
        inner = np.where(teeth[:, None], TEETH, MOUTH_INTERIOR)
        col[slit] = LIP_LINE * (1 - opening) + inner * opening
        region[lips] = REGION_LABELS["mouth"]
        hair = (e > 0.62 - 0.35 * _smoothstep((-np.cos(u) + 0.3) / 1.0)) & ~((np.abs(u) < 0.9) & (e < 0.75))
        col[hair] = HAIR
        region[hair] = REGION_LABELS["hair"]
        col = np.clip(col, 0.0, 1.0)
        return (col, region) if with_regions else col


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL camera-to-world looking from ``eye`` at ``target``."""
    back = eye - target
    back = back / np.linalg.norm(back)
    right = np.cross(np.asarray(up), back)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(back, right), back, eye
    return c2w


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def render_head(
    head: ProceduralHead,
    expression: np.ndarray,
    head_pose: np.ndarray,
    cameras: list[np.ndarray],
    intrinsics: tuple[float, float, float, float],
    size: tuple[int, int],
    supersampling: int = 2,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Ray cast the head into each camera (OpenGL c2w): per camera (rgb [H, W, 3] over white,
    coverage [H, W] in [0, 1], region labels [H, W] uint8)."""
    fx, fy, cx, cy = intrinsics
    w, h = size
    s = supersampling
    verts_head = head.vertices(expression)
    normals_head = trimesh.Trimesh(verts_head, head.faces, process=False).vertex_normals
    mesh = trimesh.Trimesh(verts_head @ head_pose[:3, :3].T + head_pose[:3, 3], head.faces, process=False)
    intersector = trimesh.ray.ray_pyembree.RayMeshIntersector(mesh) if trimesh.ray.has_embree else mesh.ray
    offsets = (np.arange(s) + 0.5) / s
    gx, gy = np.meshgrid((np.arange(w)[:, None] + offsets).reshape(-1), (np.arange(h)[:, None] + offsets).reshape(-1))
    d_cam = np.stack([(gx - cx) / fx, -(gy - cy) / fy, -np.ones_like(gx)], -1).reshape(-1, 3)
    outputs = []
    for c2w in cameras:
        dirs = d_cam @ c2w[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        tri, ray, loc = intersector.intersects_id(np.broadcast_to(c2w[:3, 3], dirs.shape), dirs, multiple_hits=False, return_locations=True)
        rgb = np.ones((len(dirs), 3))
        hit = np.zeros(len(dirs))
        region = np.zeros(len(dirs), dtype=np.uint8)
        if len(tri):
            bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], loc)
            corners = head.faces[tri]
            canon = np.einsum("mk,mkd->md", bary, head.dirs[corners])
            canon /= np.linalg.norm(canon, axis=1, keepdims=True)
            albedo, labels = head.albedo(canon, expression, with_regions=True)
            normals = np.einsum("mk,mkd->md", bary, normals_head[corners])
            normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
            rgb[ray] = albedo * (0.72 + 0.28 * np.clip(normals @ LIGHT, 0.0, 1.0))[:, None]
            hit[ray] = 1.0
            region[ray] = labels
        outputs.append(
            (
                rgb.reshape(h, s, w, s, 3).mean(axis=(1, 3)),
                hit.reshape(h, s, w, s).mean(axis=(1, 3)),
                region.reshape(h, s, w, s)[:, s // 2, :, s // 2],  # the sub-sample nearest the pixel centre
            )
        )
    return outputs


def expression_track(rng: np.random.Generator, steps: int) -> np.ndarray:
    """A smooth expression trajectory [steps, 6]: a few coefficients active, values in [0, 1]."""
    t = np.linspace(0.0, 1.0, steps)
    track = np.zeros((steps, len(EXPRESSION_LABELS)))
    active = rng.choice(len(EXPRESSION_LABELS), size=rng.integers(2, 4), replace=False)
    for k in range(len(EXPRESSION_LABELS)):
        blink = EXPRESSION_LABELS[k].startswith("blink")
        n_bumps = rng.integers(1, 3) if k in active else int(rng.random() < 0.3)
        for _ in range(n_bumps):
            amp = rng.uniform(0.6, 1.0) if k in active else rng.uniform(0.1, 0.35)
            width = rng.uniform(0.04, 0.08) if blink else rng.uniform(0.12, 0.3)
            track[:, k] += amp * np.exp(-0.5 * ((t - rng.uniform(0.1, 0.9)) / width) ** 2)
    return np.clip(track, 0.0, 1.0)


def head_pose_track(rng: np.random.Generator, steps: int, yaw_deg: float) -> np.ndarray:
    """Smooth world-from-head poses [steps, 4, 4]."""
    t = np.linspace(0.0, 1.0, steps)
    amp = np.deg2rad([yaw_deg, 10.0, 5.0]) * rng.uniform(0.4, 1.0, 3)
    freq, phase = rng.uniform(0.5, 1.5, 3), rng.uniform(0, 2 * np.pi, 3)
    angles = amp[None] * np.sin(2 * np.pi * freq[None] * t[:, None] + phase[None])
    shift = rng.uniform(-0.01, 0.01, 3)
    poses = np.tile(np.eye(4), (steps, 1, 1))
    for i, (yaw, pitch, roll) in enumerate(angles):
        poses[i, :3, :3] = rotation(yaw, pitch, roll)
        poses[i, :3, 3] = shift * np.sin(np.pi * t[i])
    return poses


def camera_rig(cfg: SyntheticConfig) -> list[np.ndarray]:
    """Camera-to-world matrices (OpenGL) at distance 1 looking at the head."""
    if cfg.rig == "monocular":
        return [look_at_c2w(np.array([0.0, 0.0, 1.0]), np.zeros(3))]
    yaws = np.deg2rad(np.linspace(-60.0, 60.0, cfg.n_cameras))
    pitches = np.deg2rad(np.where(np.arange(cfg.n_cameras) % 2 == 0, 15.0, -5.0))
    return [
        look_at_c2w(np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)]), np.zeros(3))
        for y, p in zip(yaws, pitches)
    ]


def _png(array: np.ndarray) -> np.ndarray:
    return np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)


def generate_synthetic_subject(out: str | Path, cfg: SyntheticConfig) -> Path:
    """Write a complete subject folder at ``out`` (replaced atomically)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    rng = np.random.default_rng(cfg.seed)
    head = ProceduralHead(cfg.seed, cfg.mesh_subdivisions)
    res = cfg.resolution
    focal = 0.75 * res / (HEAD_HEIGHT * 1.1)  # the head with its hair fills about 70% of the frame height at distance 1
    intrinsics = (focal, focal, res / 2, res / 2)
    rigs = camera_rig(cfg)
    yaw = 30.0 if cfg.rig == "monocular" else 20.0
    names = [f"train_{i:02d}" for i in range(cfg.n_train_sequences)] + [f"test_{i:02d}" for i in range(cfg.n_test_sequences)]
    frames = []
    for seq in names:
        expressions = expression_track(rng, cfg.timesteps_per_sequence)
        poses = head_pose_track(rng, cfg.timesteps_per_sequence, yaw)
        for t in range(cfg.timesteps_per_sequence):
            mesh_rel = f"meshes/{seq}/{t:03d}.ply"
            (tmp / mesh_rel).parent.mkdir(parents=True, exist_ok=True)
            head.mesh(expressions[t]).export(tmp / mesh_rel)
            views = render_head(head, expressions[t], poses[t], rigs, intrinsics, (res, res), cfg.supersampling)
            for cam, (rgb, coverage, regions) in enumerate(views):
                stem = f"{seq}/{cam:02d}_{t:03d}.png"
                for folder, image in (("images", _png(rgb)), ("masks", _png(coverage)), ("regions", regions)):
                    (tmp / folder / seq).mkdir(parents=True, exist_ok=True)
                    iio.imwrite(tmp / folder / stem, image)
                frames.append(
                    {
                        "file_path": f"images/{stem}",
                        "fg_mask_path": f"masks/{stem}",
                        "region_path": f"regions/{stem}",
                        "mesh_path": mesh_rel,
                        "transform_matrix": np.round(rigs[cam], 10).tolist(),
                        "timestep_index": t,
                        "camera_index": cam,
                        "sequence": seq,
                        "expression": np.round(expressions[t], 6).tolist(),
                        "head_pose": np.round(poses[t], 10).tolist(),
                    }
                )
    head.mesh(np.zeros(len(EXPRESSION_LABELS))).export(tmp / "template.ply")
    transforms = {
        "format_version": 1,
        "subject": "synthetic",
        "fl_x": focal, "fl_y": focal, "cx": res / 2, "cy": res / 2, "w": res, "h": res,
        "expression_space": {"name": "synthetic", "labels": list(EXPRESSION_LABELS)},
        "region_labels": REGION_LABELS,
        "template_mesh": "template.ply",
        "generator": {"name": "eavatar.data.synthetic", "config": asdict(cfg)},
        "splits": {"train": {"sequences": names[: cfg.n_train_sequences]}, "test": {"sequences": names[cfg.n_train_sequences :]}},
        "frames": frames,
    }  # fmt: skip
    write_transforms(tmp, transforms)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out

