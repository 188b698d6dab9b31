"""The synthetic subject: a procedural head whose expressions change shape and texture.

It is the project's embedded default data: deterministic for a seed, small enough for
2 CPU cores, with everything a real capture lacks (ground-truth expression codes, meshes
and region labels). Frames are ray cast with trimesh (embree when present), a renderer
independent of the Gaussian rasteriser, so the avatar is never graded by its own renderer.

Head space: centre at the origin, y up, the face looks toward +z, about 0.17 units wide.
The head is several meshes in one (docs/synthetic-subject.md):

* the skin, a latitude/longitude grid (rows denser over the face and forehead) cut open along
  the lip line, so the jaw parts the lips;
* the mouth cavity, a closed pocket hanging from the lip edges (its upper half on the skull,
  its lower half on the jaw), with upper teeth on the skull and lower teeth and a tongue on
  the jaw, set back in depth: an open mouth shows depth and parallax;
* two eyelids, shells just above the eyeballs whose edges come down with the blinks.

Texture is evaluated at each ray hit from the hit's *canonical* coordinates (per part), so it
is crisp at any mesh resolution and moves with the surface when the expression deforms it.
The seed chooses the identity (proportions, skin, lips, hair, eyes, freckles) and the
expression and pose trajectories. Training sequences follow a plan that drives every
coefficient (and the common pairs) through full swings; held-out sequences are new smooth
combinations inside the training range (:func:`plan_sequences`).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import trimesh
from scipy.spatial import cKDTree

from eavatar.data.subject import write_transforms
from eavatar.render.camera import look_at_c2w

EXPRESSION_LABELS = ("jaw_open", "smile", "brow_raise", "blink_left", "blink_right", "pucker")
JAW, SMILE, BROW, BLINK_L, BLINK_R, PUCKER = range(len(EXPRESSION_LABELS))
REGION_LABELS = {"background": 0, "skin": 1, "mouth": 2, "eyes": 3, "brows": 4, "hair": 5}
SEMI_AXES = np.array([0.085, 0.11, 0.095])  # the head ellipsoid before the identity's proportions, head-space units
HEAD_HEIGHT = 2 * SEMI_AXES[1]
LIGHT = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])  # fixed in head space: shading moves with the head
JAW_MAX_ANGLE = np.deg2rad(24.0)
CHEEK_U, CHEEK_E = 0.5, -0.12

# Mesh parts (one id per face); every part has its own canonical texture coordinates.
SKIN, CAVITY, TEETH, TONGUE, LID = range(5)

TEETH_COLOUR = np.array([0.95, 0.93, 0.86])
GUM = np.array([0.84, 0.47, 0.5])
CAVITY_COLOUR = np.array([0.5, 0.13, 0.16])
TONGUE_COLOUR = np.array([0.8, 0.38, 0.42])
SCLERA = np.array([0.96, 0.96, 0.94])
PUPIL = np.array([0.03, 0.03, 0.03])
LASH = np.array([0.12, 0.08, 0.06])

# Training plan: one row per training sequence, one expression group per slot of it. Every
# coefficient swings to ~1 in at least four sequences; the common pairs (jaw_open + smile,
# brow_raise + blinks, blink_left + blink_right, pucker + jaw_open) swing together in two or
# more. The seed permutes rows and slots; other sequence counts cycle through it.
TRAINING_PLAN = (
    (("jaw_open",), ("brow_raise", "blink_left", "blink_right"), ("smile",)),
    (("jaw_open", "smile"), ("blink_left",), ("pucker",)),
    (("pucker", "jaw_open"), ("blink_left", "blink_right"), ("brow_raise",)),
    (("smile",), ("blink_right",), ("jaw_open", "brow_raise")),
    (("jaw_open", "smile"), ("brow_raise", "blink_left", "blink_right"), ("pucker",)),
    (("pucker", "jaw_open"), ("smile", "blink_left", "blink_right"), ("jaw_open",)),
)
FRAMES_PER_SLOT = 7  # a 0 -> 1 -> 0 swing takes about this many timesteps
HELDOUT_MAX_DISTANCE = 0.6  # held-out sequences are redrawn until every code is this close (Euclidean) to a training code
HELDOUT_TRIES = 50  # ... at most this many times (then the closest draw is kept)

# Held-out cameras (yaw, pitch in degrees), between and slightly above the training cameras.
HELDOUT_VIEWS = {"multiview": ((0.0, 5.0), (-24.0, 28.0), (40.0, -12.0)), "monocular": ((30.0, 5.0), (-30.0, 5.0))}


@dataclass
class SyntheticConfig:
    """What to generate (params.yaml `synthetic`)."""

    seed: int = 0  # the identity and the trajectories
    resolution: int = 128
    rig: str = "multiview"  # "multiview": n_cameras over the front hemisphere; "monocular": one frontal camera
    n_cameras: int = 6  # training cameras (multiview)
    n_heldout_cameras: int = 1  # novel-view cameras, never in `train` (0: no novel_view splits)
    n_train_sequences: int = 6
    n_test_sequences: int = 2  # whole sequences held out for test
    timesteps_per_sequence: int = 20
    mesh_subdivisions: int = 5  # mesh resolution level (5: about 12,000 vertices; each level less doubles the spacing)
    supersampling: int = 2  # rays per pixel side (anti-aliased edges and soft masks)

    def __post_init__(self) -> None:
        if self.rig not in HELDOUT_VIEWS:
            raise ValueError(f"synthetic.rig: expected 'multiview' or 'monocular', got {self.rig!r}")
        for name in ("resolution", "n_cameras", "n_train_sequences", "n_test_sequences", "timesteps_per_sequence", "supersampling", "mesh_subdivisions"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"synthetic.{name}: must be at least 1, got {getattr(self, name)}")
        if not 0 <= int(self.n_heldout_cameras) <= len(HELDOUT_VIEWS[self.rig]):
            raise ValueError(f"synthetic.n_heldout_cameras: 0 to {len(HELDOUT_VIEWS[self.rig])} for rig {self.rig!r}, got {self.n_heldout_cameras}")


def _smooth_bump(d: np.ndarray, radius: float) -> np.ndarray:
    """1 at d = 0, 0 beyond ``radius``, C1 in between."""
    x = np.clip(1.0 - d / radius, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _dirs(u: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Unit directions of azimuth ``u`` (0 faces +z, positive toward +x) and elevation ``e``."""
    return np.stack([np.cos(e) * np.sin(u), np.sin(e), np.cos(e) * np.cos(u)], -1)


def _angles(dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.arctan2(dirs[:, 0], dirs[:, 2]), np.arcsin(np.clip(dirs[:, 1], -1, 1))


def _axis(breaks: list[float], spacings: list[float]) -> np.ndarray:
    """Samples from breaks[0] to breaks[-1], piecewise uniform with about ``spacings[i]`` in piece i, every break included."""
    pieces = [np.linspace(a, b, max(1, int(np.ceil((b - a) / s - 1e-9))) + 1)[:-1] for a, b, s in zip(breaks[:-1], breaks[1:], spacings)]
    return np.concatenate(pieces + [np.array([breaks[-1]])])


def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Two triangles per cell of a rows x cols vertex grid (index r * cols + c), counter-clockwise seen from outside."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % cols
    a, b, cc, d = r * cols + c, r * cols + c1, (r + 1) * cols + c1, (r + 1) * cols + c
    return np.concatenate([np.stack([a, b, cc], 1), np.stack([a, cc, d], 1)])


def _lerp(a, b, t):
    return np.asarray(a) * (1 - t) + np.asarray(b) * t


@dataclass(frozen=True)
class Identity:
    """What the seed chooses about the person: proportions, facial layout and colours."""

    semi_axes: np.ndarray
    nose: float
    chin: float
    jaw_narrow: float
    cheekbone: float
    eye_u: float
    eye_e: float
    eye_r: float
    brow_e: float
    mouth_e: float
    mouth_w: float  # half width of the lip line (radians of azimuth)
    lip_half_e: float
    hairline: float
    skin: np.ndarray
    lip: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    freckle: np.ndarray
    blush: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> "Identity":
        tone = rng.uniform(0.0, 1.0)
        skin = _lerp([0.93, 0.76, 0.66], [0.52, 0.35, 0.26], tone) * (1 + rng.uniform(-0.04, 0.04, 3))
        hair_palette = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.09], [0.55, 0.42, 0.26], [0.45, 0.2, 0.1], [0.3, 0.3, 0.3]])
        hair = hair_palette[rng.integers(len(hair_palette))] * rng.uniform(0.85, 1.15)
        iris_palette = np.array([[0.25, 0.16, 0.1], [0.2, 0.35, 0.55], [0.3, 0.4, 0.25], [0.4, 0.3, 0.15]])
        eye_e = rng.uniform(0.13, 0.19)
        return Identity(
            semi_axes=SEMI_AXES * (1 + rng.uniform(-0.07, 0.07, 3)),
            nose=rng.uniform(0.12, 0.2),
            chin=rng.uniform(0.03, 0.08),
            jaw_narrow=rng.uniform(0.06, 0.16),
            cheekbone=rng.uniform(0.0, 0.04),
            eye_u=rng.uniform(0.33, 0.4),
            eye_e=eye_e,
            eye_r=rng.uniform(0.1, 0.12),
            brow_e=eye_e + rng.uniform(0.15, 0.19),
            mouth_e=rng.uniform(-0.44, -0.37),
            mouth_w=rng.uniform(0.29, 0.35),
            lip_half_e=rng.uniform(0.07, 0.095),
            hairline=rng.uniform(0.6, 0.68),
            skin=np.clip(skin, 0, 1),
            lip=np.clip(skin * np.array([0.85, 0.55, 0.58]) * rng.uniform(0.9, 1.05) + np.array([0.05, 0.0, 0.0]), 0, 1),
            hair=np.clip(hair, 0, 1),
            brow=np.clip(hair * 0.8 + 0.03, 0, 1),
            iris=iris_palette[rng.integers(len(iris_palette))],
            freckle=np.clip(skin * np.array([0.72, 0.6, 0.52]), 0, 1),
            blush=np.array([0.9, 0.38, 0.38]),
        )


class ProceduralHead:
    """Shape and texture of the head as functions of the expression code.

    ``faces`` and ``parts`` (one part id per face) are fixed; :meth:`geometry` gives the
    vertices and per-vertex canonical texture coordinates [V, 4] of an expression.
    """

    def __init__(self, seed: int, subdivisions: int):
        rng = np.random.default_rng([seed, 0])
        self.id = Identity.sample(rng)
        self.scale = 2.0 ** (5 - int(subdivisions))  # mesh spacing relative to level 5
        # seeded skin detail, so the avatar has texture to fit and seeds differ
        self.freq = rng.normal(size=(6, 3)) * 3.0
        self.phase = rng.uniform(0, 2 * np.pi, size=6)
        self.tint = rng.normal(size=(6, 3)) * 0.012
        n_spots = int(rng.integers(35, 95))
        self.spots = np.stack([rng.uniform(-1.1, 1.1, n_spots), rng.uniform(-0.6, 0.5, n_spots)], 1)
        self.spot_r = rng.uniform(0.015, 0.035, n_spots)
        self.spot_tree = cKDTree(self.spots)
        self._build()
        self.neutral = self.geometry(np.zeros(len(EXPRESSION_LABELS)))[0]

    # -- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        I, s = self.id, self.scale
        # skin grid: rows of elevation (one exactly on the lip line), columns of azimuth (two exactly at the mouth corners)
        rows = _axis(
            [-np.pi / 2, -0.9, I.mouth_e, I.brow_e + 0.06, I.hairline + 0.02, np.pi / 2],
            [0.075 * s, 0.028 * s, 0.028 * s, 0.016 * s, 0.075 * s],
        )[1:-1]
        half = _axis([0.0, I.mouth_w, 1.1, np.pi], [0.022 * s, 0.032 * s, 0.085 * s])
        cols = np.concatenate([-half[:0:-1], half[:-1]])  # -pi .. < pi, symmetric about 0
        n_r, n_c = len(rows), len(cols)
        self.slit_row = int(np.argmin(np.abs(rows - I.mouth_e)))
        slit_cols = np.nonzero(np.abs(cols) <= I.mouth_w + 1e-9)[0]  # corners and interior, left to right
        interior = slit_cols[1:-1]
        E, U = np.meshgrid(rows, cols, indexing="ij")
        u = np.concatenate([U.ravel(), [0.0, 0.0], cols[interior]])
        e = np.concatenate([E.ravel(), [-np.pi / 2, np.pi / 2], np.full(len(interior), rows[self.slit_row])])
        lower = np.concatenate([E.ravel() < I.mouth_e - 1e-9, [True, False], np.ones(len(interior), bool)])
        bottom, top = n_r * n_c, n_r * n_c + 1
        dup = {int(self.slit_row * n_c + c): n_r * n_c + 2 + k for k, c in enumerate(interior)}
        faces = _grid_faces(n_r, n_c, wrap=True)
        below_slit = np.concatenate([np.arange(n_c * (n_r - 1)) // n_c] * 2) == self.slit_row - 1  # cells whose top row is the lip line
        remap = np.arange(n_r * n_c + 2 + len(interior))
        remap[list(dup)] = list(dup.values())
        faces[below_slit] = remap[faces[below_slit]]  # the cells below the lip line use the lower lip's copies
        c = np.arange(n_c)
        faces = np.concatenate([faces, np.stack([np.full(n_c, bottom), (c + 1) % n_c, c], 1), np.stack([np.full(n_c, top), (n_r - 1) * n_c + c, (n_r - 1) * n_c + (c + 1) % n_c], 1)])
        self.skin_u, self.skin_e, self.skin_lower, self.skin_dirs = u, e, lower, _dirs(u, e)
        self.n_skin = len(u)
        self.upper_edge = np.array([self.slit_row * n_c + c for c in slit_cols])
        self.lower_edge = np.array([dup.get(int(self.slit_row * n_c + c), self.slit_row * n_c + c) for c in slit_cols])
        self.slit_u = cols[slit_cols]

        parts_faces = [faces]
        part_ids = [np.full(len(faces), SKIN)]
        offset = self.n_skin

        # mouth cavity: a grid (profile rows x slit columns) from the upper lip edge round to the lower one
        self.n_prof = max(9, int(round(26 / np.sqrt(s))))
        self.profile = self._cavity_profile(self.n_prof)
        k = len(slit_cols)
        grid = np.concatenate([self.upper_edge[None], np.arange((self.n_prof - 2) * k).reshape(-1, k) + offset, self.lower_edge[None]])
        cav = grid.ravel()[_grid_faces(self.n_prof, k, wrap=False)]  # its first and last rows are the skin's lip edges
        j = np.arange(1, self.n_prof - 2)
        left, right = grid[:, 0], grid[:, -1]  # close the pocket at the mouth corners (fans from the corner vertex)
        caps = [np.stack([np.full(len(j), left[0]), left[j], left[j + 1]], 1), np.stack([np.full(len(j), right[0]), right[j + 1], right[j]], 1)]
        cav = np.concatenate([cav, *caps])
        self.cavity_range = (offset, offset + (self.n_prof - 2) * k)
        parts_faces.append(cav)
        part_ids.append(np.full(len(cav), CAVITY))
        offset += (self.n_prof - 2) * k

        # teeth: two arches of a closed tube (4-corner cross-section)
        self.n_arch = 10 * max(2, int(round(5 / s))) + 1
        self.teeth_ranges = []
        for _ in range(2):
            tube = _grid_faces(self.n_arch, 4, wrap=True)
            caps = np.array([[0, 1, 2], [0, 2, 3]])
            caps = np.concatenate([caps[:, ::-1], caps + 4 * (self.n_arch - 1)])
            f = np.concatenate([tube, caps]) + offset
            parts_faces.append(f)
            part_ids.append(np.full(len(f), TEETH))
            self.teeth_ranges.append((offset, offset + 4 * self.n_arch))
            offset += 4 * self.n_arch

        # tongue: a flattened ellipsoid on the jaw
        sphere = trimesh.creation.icosphere(subdivisions=int(np.clip(np.round(2 - np.log2(s)), 1, 3)), radius=1.0)
        self.tongue_dirs = np.asarray(sphere.vertices)
        parts_faces.append(np.asarray(sphere.faces) + offset)
        part_ids.append(np.full(len(sphere.faces), TONGUE))
        self.tongue_range = (offset, offset + len(self.tongue_dirs))
        offset += len(self.tongue_dirs)

        # eyelids: a grid per eye (rows from the lid edge up, columns across the eye)
        self.lid_shape = (max(5, int(round(10 / np.sqrt(s)))), max(7, int(round(15 / np.sqrt(s)))))
        n_ly, n_lx = self.lid_shape
        self.lid_ranges = []
        for _ in (1, -1):
            f = _grid_faces(n_ly, n_lx, wrap=False)
            parts_faces.append(f + offset)
            part_ids.append(np.full(len(f), LID))
            self.lid_ranges.append((offset, offset + n_ly * n_lx))
            offset += n_ly * n_lx
        self.n_vertices = offset
        self.faces = np.concatenate(parts_faces).astype(np.int64)
        self.parts = np.concatenate(part_ids).astype(np.int8)
        self._rigid_parts()
        self._orient()

    def _rigid_parts(self) -> None:
        """Rest positions and texture coordinates of the teeth arches (tubes of a 4-corner section) and the tongue."""
        I = self.id
        centre = self._neutral(np.zeros(1), np.full(1, I.mouth_e))[0]  # the middle of the lip line
        corner_x = abs(self._neutral(np.array([I.mouth_w]), np.array([I.mouth_e]))[0, 0])
        arch = np.linspace(-1.0, 1.0, self.n_arch)  # across the arch; the ends curve back by 0.012
        half_w, back = 0.8 * corner_x, 0.012 / (1 - np.cos(1.0))
        x, z_back = half_w * np.sin(arch) / np.sin(1.0), back * (1 - np.cos(arch))
        tangent = np.stack([half_w * np.cos(arch) / np.sin(1.0), np.zeros_like(arch), -back * np.sin(arch)], 1)
        normal = np.cross(tangent, [0.0, 1.0, 0.0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        normal *= np.sign(normal[:, 2:3])
        gap = (1 - np.abs(np.sin(np.pi * (arch + 1) / 2 * 10))) ** 2  # between two of the ten teeth
        self.rest_teeth = []
        for j, upper in enumerate((True, False)):
            if upper:  # incisors overlap the lower ones in front (overbite); shorter toward the sides
                front_z, y_top, y_bot = centre[2] - 0.0058, np.full_like(arch, centre[1] + 0.014), centre[1] - 0.0035 + 0.005 * arch**2 + 0.0016 * gap
            else:
                front_z, y_top, y_bot = centre[2] - 0.0088, centre[1] + 0.0004 - 0.003 * arch**2 - 0.0014 * gap, np.full_like(arch, centre[1] - 0.0125)
            front = np.stack([x, np.zeros_like(x), front_z - z_back], 1)
            behind = front - 0.003 * normal
            ring = np.stack([front + _y(y_bot), front + _y(y_top), behind + _y(y_top), behind + _y(y_bot)], 1)  # [n_arch, 4, 3]
            h = np.tile([0.0, 1.0, 1.0, 0.0] if upper else [1.0, 0.0, 0.0, 1.0], self.n_arch)  # 1 at the gum
            canon = np.stack([np.repeat(arch, 4), h, np.full(len(h), j), np.zeros(len(h))], 1)
            self.rest_teeth.append((ring.reshape(-1, 3), canon))
        axes = np.array([0.62 * corner_x, 0.0062, 0.0165])
        d = self.tongue_dirs
        shape = d * axes * np.where(d[:, 2] > 0, 1 - 0.15 * d[:, 1] ** 2, 1.0)[:, None]  # a narrower tip
        self.rest_tongue = np.array([0.0, centre[1] - 0.0074, centre[2] - 0.0295]) + shape

    def _orient(self) -> None:
        """Flip whole parts whose faces mostly point inward, so vertex normals face the viewer."""
        v = self.geometry(np.zeros(len(EXPRESSION_LABELS)))[0]
        tri = v[self.faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = tri.mean(1)
        for part, ref, outward in ((SKIN, np.zeros(3), 1), (CAVITY, None, -1), (TEETH, None, 1), (TONGUE, None, 1), (LID, np.zeros(3), 1)):
            sel = self.parts == part
            ref = centre[sel].mean(0) if ref is None else ref
            if outward * np.sum(np.einsum("ij,ij->i", normals[sel], centre[sel] - ref)) < 0:
                self.faces[sel] = self.faces[sel][:, ::-1]

    def _cavity_profile(self, n: int) -> np.ndarray:
        """Samples [n, 3] of (depth behind the lip edge, height above it, t in [0, 1]) from the upper lip edge (t = 0) round the
        palate and throat to the lower lip edge (t = 1), at the centre of the mouth (head-space units)."""
        upper = [(0.0, 0.0), (0.0025, 0.0035), (0.0045, 0.0095), (0.0062, 0.0135), (0.012, 0.0138), (0.022, 0.016), (0.034, 0.014), (0.043, 0.007)]
        pts = np.array(upper + [(0.047, 0.0)] + [(d, -h) for d, h in upper[::-1]])
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        t = np.linspace(0.0, 1.0, n)
        return np.stack([np.interp(t * arc[-1], arc, pts[:, 0]), np.interp(t * arc[-1], arc, pts[:, 1]), t], 1)

    # -- shape -------------------------------------------------------------------------------
    def _radius(self, u: np.ndarray, e: np.ndarray) -> np.ndarray:
        I = self.id
        r = np.ones(len(u))
        r += I.nose * _smooth_bump(np.hypot(u / 0.7, (e + 0.02) / 0.9) * 0.35, 0.12)
        r += I.chin * _smooth_bump(np.hypot(u, e - I.mouth_e + 0.11), 0.35)
        r += 0.025 * _smooth_bump(np.hypot(u / (I.mouth_w + 0.05), (e - I.mouth_e) / (I.lip_half_e + 0.03)), 1.0)  # full lips
        for side in (-1, 1):
            d_eye = np.hypot(u - side * I.eye_u, e - I.eye_e)
            r -= 0.05 * _smooth_bump(d_eye, 0.2)  # eye sockets
            r += 0.03 * np.clip(1 - (d_eye / I.eye_r) ** 2, 0, None)  # eyeballs
            r += 0.05 * _smooth_bump(np.hypot(u - side * I.eye_u, e - I.brow_e - 0.04), 0.18)  # brow ridge
            r += 0.06 * _smooth_bump(np.hypot(u - side * 1.55, e - 0.05), 0.22)  # ears
            r += I.cheekbone * _smooth_bump(np.hypot(u - side * 0.62, e + 0.02), 0.3)
        r -= I.jaw_narrow * _smoothstep((-e - 0.5) / 0.6) * _smoothstep((np.cos(e) * np.cos(u) + 0.2) / 1.2)  # jaw line narrows
        return r

    def _neutral(self, u: np.ndarray, e: np.ndarray) -> np.ndarray:
        return _dirs(u, e) * self.id.semi_axes * self._radius(u, e)[:, None]

    @property
    def hinge(self) -> np.ndarray:
        a = self.id.semi_axes
        return np.array([0.0, -0.05 * a[1], -0.3 * a[2]])

    def _jaw_weight(self, u: np.ndarray, e: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """How much of the jaw's rotation a skin point follows: 1 below the lips, 0 above, cut along the lip line."""
        I = self.id
        base = _smoothstep((I.mouth_e + 0.12 - e) / 0.24)
        m = _smooth_bump(np.abs(u) / I.mouth_w, 1.0) * _smooth_bump(np.abs(e - I.mouth_e) / 0.35, 1.0)
        w = (1 - m) * base + m * lower
        front = _smoothstep((np.cos(e) * np.cos(u) + 0.45) / 0.6)  # the back of the head stays (the hinge is near the ears)
        return w * front

    def _rotate_jaw(self, p: np.ndarray, angle: np.ndarray) -> np.ndarray:
        q = p - self.hinge
        c, s = np.cos(angle), np.sin(angle)
        return self.hinge + np.stack([q[:, 0], c * q[:, 1] - s * q[:, 2], s * q[:, 1] + c * q[:, 2]], -1)

    def _offsets(self, u: np.ndarray, e: np.ndarray, lower: np.ndarray, p: np.ndarray, code: np.ndarray) -> np.ndarray:
        """Expression displacements of skin points (after the jaw): upper lip, pucker, smile, brows and wrinkles."""
        I = self.id
        jaw, smile, brow, _, _, pucker = (float(x) for x in code)
        d = _dirs(u, e)
        size = np.linalg.norm(p, axis=1, keepdims=True)
        off = np.zeros_like(p)
        front = _smoothstep((np.cos(u) - 0.2) / 0.5)
        lips = _smooth_bump(np.abs(e - I.mouth_e) / (I.lip_half_e + 0.06), 1.0) * _smooth_bump(np.abs(u) / (I.mouth_w + 0.12), 1.0)
        off[:, 2] += 0.009 * pucker * lips * front
        off[:, 1] += 0.003 * jaw * lips * ~lower  # the upper lip lifts off the teeth as the mouth opens
        off[:, 0] -= 0.28 * pucker * lips * p[:, 0]
        for side in (-1, 1):
            corner = _smooth_bump(np.hypot(u - side * I.mouth_w, e - I.mouth_e), 0.25)
            off += np.array([side * 0.004, 0.009, -0.004]) * (smile * corner)[:, None]
            cheek = _smooth_bump(np.hypot(u - side * CHEEK_U, e - CHEEK_E), 0.24)
            off += (0.045 * smile * cheek)[:, None] * size * d  # the cheek bulges
            off[:, 1] += 0.003 * smile * cheek
            fold = _segment_distance(u, e, (side * 0.2, -0.2), (side * (I.mouth_w + 0.1), I.mouth_e - 0.08))
            off -= (0.0028 * smile * _smooth_bump(fold, 0.05))[:, None] * d  # nasolabial fold
            brow_w = _smooth_bump(np.hypot((u - side * I.eye_u) / 1.6, e - I.brow_e), 0.22)
            off[:, 1] += 0.008 * brow * brow_w
        forehead, grooves = self._wrinkles(u, e)
        off -= (0.0013 * brow * forehead * grooves)[:, None] * d
        off[:, 1] += 0.004 * brow * forehead
        return off

    def _wrinkles(self, u: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the forehead wrinkles (0..1) and the groove pattern (1 in a groove)."""
        I = self.id
        lo, hi = I.brow_e + 0.07, I.hairline - 0.03
        forehead = _smooth_bump(np.abs(u) / 0.65, 1.0) * _smoothstep((e - lo) / 0.05) * _smoothstep((hi - e) / 0.05)
        period = (hi - lo) / 4.0
        grooves = (0.5 + 0.5 * np.cos(2 * np.pi * (e - lo) / period)) ** 3
        return forehead, grooves

    def _skin_at(self, u: np.ndarray, e: np.ndarray, lower: np.ndarray, code: np.ndarray) -> np.ndarray:
        p = self._rotate_jaw(self._neutral(u, e), JAW_MAX_ANGLE * float(code[JAW]) * self._jaw_weight(u, e, lower))
        return p + self._offsets(u, e, lower, p, code)

    def _lid_edge(self, x: np.ndarray, blink: float) -> np.ndarray:
        """Height of the upper lid's edge across the eye (eye-radius units): open 0.6, closed below the eye."""
        b = _smoothstep(np.asarray(blink))
        return _lerp(0.6 + 0.15 * x**2, -1.18 + 0.32 * x**2, b)

    def geometry(self, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices [V, 3] (head space) and canonical texture coordinates [V, 4] at an expression code."""
        code = np.asarray(expression, dtype=np.float64)
        I = self.id
        jaw = float(code[JAW])
        V = np.zeros((self.n_vertices, 3))
        C = np.zeros((self.n_vertices, 4))
        # skin
        u, e, lower = self.skin_u, self.skin_e, self.skin_lower
        V[: self.n_skin] = self._skin_at(u, e, lower, code)
        C[: self.n_skin, :3] = _dirs(u, e)
        # mouth cavity: its rest shape hangs behind the lip edges; upper half on the skull, lower half on the jaw
        a, b = self.cavity_range
        k = len(self.slit_u)
        uc = np.tile(self.slit_u, self.n_prof)
        depth, height, t = (np.repeat(self.profile[:, i], k) for i in range(3))
        edge = self._neutral(uc, np.full(len(uc), I.mouth_e))
        hs = 0.15 + 0.85 * np.sqrt(np.clip(1 - (uc / I.mouth_w) ** 2, 0, 1))
        rest = edge + np.stack([edge[:, 0] * 0.12 * _smoothstep(depth / 0.02), height * hs, -depth * (0.7 + 0.3 * hs)], 1)
        m = _smooth_bump(np.abs(uc) / I.mouth_w, 1.0)
        w = (1 - m) * 0.5 + m * _smoothstep((t - 0.42) / 0.16)
        pos = self._rotate_jaw(rest, JAW_MAX_ANGLE * jaw * w)
        e_front = I.mouth_e + height * hs / (I.semi_axes[1] * np.cos(I.mouth_e))  # the skin in front of each cavity point
        pos += self._offsets(uc, e_front, t > 0.5, pos, code) * (1 - 0.6 * _smoothstep(depth / 0.03))[:, None]
        V[a:b] = pos.reshape(self.n_prof, k, 3)[1:-1].reshape(-1, 3)
        C[a:b, :3] = np.stack([uc, t, depth], 1).reshape(self.n_prof, k, 3)[1:-1].reshape(-1, 3)
        # teeth (upper on the skull, lower on the jaw) and tongue (on the jaw): rigid parts
        (ulo, uhi), (llo, lhi) = self.teeth_ranges
        tlo, thi = self.tongue_range
        V[ulo:uhi], C[ulo:uhi] = self.rest_teeth[0]
        V[llo:lhi], C[llo:lhi] = self.rest_teeth[1]
        V[tlo:thi], C[tlo:thi, :3] = self.rest_tongue, self.tongue_dirs
        V[llo:lhi] = self._rotate_jaw(V[llo:lhi], np.full(lhi - llo, JAW_MAX_ANGLE * jaw))
        V[tlo:thi] = self._rotate_jaw(V[tlo:thi], np.full(thi - tlo, JAW_MAX_ANGLE * jaw))
        # eyelids: shells just above the skin whose edge comes down with the blink
        n_ly, n_lx = self.lid_shape
        for (lo, hi), side, blink in zip(self.lid_ranges, (1, -1), (code[BLINK_L], code[BLINK_R])):  # the subject's left eye is at +x
            x = np.linspace(-1.35, 1.35, n_lx)
            edge_y = self._lid_edge(x, float(blink))
            f = (np.arange(n_ly) / (n_ly - 1))[:, None] ** 1.4
            y = edge_y[None] + (1.4 - edge_y[None]) * f  # [n_ly, n_lx]
            X = np.broadcast_to(x[None], y.shape)
            lu = (side * I.eye_u + X * I.eye_r).ravel()
            le = (I.eye_e + y * I.eye_r).ravel()
            border = np.maximum(_smoothstep((np.abs(X) - 0.95) / 0.35), _smoothstep((y - 1.05) / 0.3)).ravel()
            lift = 0.0019 * (1 - border) - 0.0012 * border
            pts = self._skin_at(lu, le, np.zeros(len(lu), bool), code) + lift[:, None] * _dirs(lu, le)
            V[lo:hi] = pts
            C[lo:hi] = np.concatenate([_dirs(lu, le), (y - edge_y[None]).reshape(-1, 1)], 1)
        return V, C

    def vertices(self, expression: np.ndarray) -> np.ndarray:
        """Head-space vertex positions at an expression code [len(EXPRESSION_LABELS)]."""
        return self.geometry(expression)[0]

    def mesh(self, expression: np.ndarray) -> trimesh.Trimesh:
        vertices, canon = self.geometry(expression)
        vertex_part = np.zeros(self.n_vertices, dtype=np.int8)
        vertex_part[self.faces.ravel()] = np.repeat(self.parts, 3)
        colors, regions = self.albedo(canon, vertex_part, expression, with_regions=True)
        rgba = np.concatenate([np.round(colors * 255), np.full((len(colors), 1), 255)], 1).astype(np.uint8)
        mesh = trimesh.Trimesh(vertices, self.faces, vertex_colors=rgba, process=False)
        mesh.vertex_attributes["region"] = regions.astype(np.uint8)  # REGION_LABELS per vertex: per-region geometry metrics
        return mesh

    # -- texture -----------------------------------------------------------------------------
    def albedo(self, canon: np.ndarray, parts: np.ndarray, expression: np.ndarray, with_regions: bool = False):
        """Albedo [M, 3] (and region labels [M]) at canonical coordinates [M, 4] of the given parts [M]."""
        col = np.zeros((len(canon), 3))
        region = np.full(len(canon), REGION_LABELS["mouth"], dtype=np.uint8)
        for part, fn in ((SKIN, self._skin_albedo), (LID, self._lid_albedo)):
            sel = parts == part
            if sel.any():
                col[sel], region[sel] = fn(canon[sel], expression)
        for part, fn in ((CAVITY, self._cavity_albedo), (TEETH, self._teeth_albedo), (TONGUE, self._tongue_albedo)):
            sel = parts == part
            if sel.any():
                col[sel] = fn(canon[sel])
        col = np.clip(col, 0.0, 1.0)
        return (col, region) if with_regions else col

    def _skin_albedo(self, canon: np.ndarray, expression: np.ndarray, lid: bool = False) -> tuple[np.ndarray, np.ndarray]:
        I = self.id
        jaw, smile, brow = (float(x) for x in expression[:3])
        dirs = canon[:, :3] / np.linalg.norm(canon[:, :3], axis=1, keepdims=True)
        u, e = _angles(dirs)
        m = len(u)
        col = np.tile(I.skin, (m, 1))
        col += np.sin(dirs @ self.freq.T + self.phase) @ self.tint  # low-frequency skin tone
        region = np.full(m, REGION_LABELS["skin"], dtype=np.uint8)
        dist, idx = self.spot_tree.query(np.stack([u, e], 1), k=2, distance_upper_bound=0.036)
        spots = np.zeros(m)
        for j in range(2):
            hit = np.isfinite(dist[:, j])
            spots[hit] = np.maximum(spots[hit], _smooth_bump(dist[hit, j], self.spot_r[idx[hit, j]]))
        col = col * (1 - 0.6 * spots[:, None]) + I.freckle * 0.6 * spots[:, None]
        face = np.nonzero((np.abs(u) < 1.0) & (e > -0.8) & (e < I.hairline + 0.05))[0]  # every feature below lies in here
        col[face], region[face] = self._face_features(u[face], e[face], col[face], region[face], jaw, smile, brow, lid)
        hair = (e > I.hairline - 0.35 * _smoothstep((-np.cos(u) + 0.3) / 1.0)) & ~((np.abs(u) < 0.9) & (e < I.hairline + 0.13))
        col[hair] = I.hair * (1 + 0.08 * np.sin(u[hair] * 60))[:, None]
        region[hair] = REGION_LABELS["hair"]
        return col, region

    def _face_features(self, u, e, col, region, jaw: float, smile: float, brow: float, lid: bool):
        """Wrinkles, blush, folds, brows, eyes and lips over the face's colours and labels."""
        I = self.id
        if brow > 0:
            forehead, grooves = self._wrinkles(u, e)
            col *= (1 - 0.3 * brow * forehead * grooves)[:, None]  # forehead wrinkles darken with raised brows
        for side in (-1, 1):
            if smile > 0:
                blush = 0.4 * smile * _smooth_bump(np.hypot(u - side * CHEEK_U, e - CHEEK_E), 0.18)[:, None]
                col = col * (1 - blush) + I.blush * blush
                fold = _segment_distance(u, e, (side * 0.2, -0.2), (side * (I.mouth_w + 0.1), I.mouth_e - 0.08))
                col *= (1 - 0.18 * smile * _smooth_bump(fold, 0.03))[:, None]
            brows = (np.abs(u - side * I.eye_u) < 0.2) & (np.abs(e - I.brow_e - 0.015 * np.cos((u - side * I.eye_u) * 6)) < 0.035)
            col[brows] = I.brow
            region[brows] = REGION_LABELS["brows"]
            if not lid:  # the eyeball (lids are skin over it)
                d_eye = np.hypot(u - side * I.eye_u, e - I.eye_e)
                eye = d_eye < I.eye_r
                eye_col = np.where((d_eye < 0.018)[:, None], PUPIL, np.where((d_eye < 0.043)[:, None], I.iris, SCLERA))
                col[eye] = eye_col[eye]
                col[eye & (d_eye > I.eye_r - 0.012) & (e < I.eye_e)] = LASH * 2  # lower lash line
                region[eye] = REGION_LABELS["eyes"]
        # lips, and the dark line where they meet (it fades as they part)
        du, de = np.abs(u), e - I.mouth_e
        lips = (du < I.mouth_w * np.sqrt(np.clip(1 - (de / I.lip_half_e) ** 2, 0, 1))) & (np.abs(de) < I.lip_half_e)
        col[lips] = I.lip * (1 - 0.06 * np.cos(du[lips] * 40))[:, None]
        line = lips & (np.abs(de) < 0.01)
        col[line] = col[line] * (1 - 0.55 * (1 - _smoothstep(jaw / 0.15)))
        region[lips] = REGION_LABELS["mouth"]
        return col, region

    def _lid_albedo(self, canon: np.ndarray, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col, region = self._skin_albedo(canon, expression, lid=True)
        u, e = _angles(canon[:, :3] / np.linalg.norm(canon[:, :3], axis=1, keepdims=True))
        d_eye = np.minimum(np.hypot(u - self.id.eye_u, e - self.id.eye_e), np.hypot(u + self.id.eye_u, e - self.id.eye_e))
        col = col * (1 - 0.07 * _smooth_bump(d_eye, 1.1 * self.id.eye_r))[:, None]  # a little shadow over the eye
        lash = canon[:, 3] < 0.14
        col[lash] = LASH
        return col, np.where(region == REGION_LABELS["brows"], region, REGION_LABELS["eyes"]).astype(np.uint8)

    def _cavity_albedo(self, canon: np.ndarray) -> np.ndarray:
        _, t, depth = canon[:, 0], canon[:, 1], canon[:, 2]
        gum = _smooth_bump(np.abs(depth - 0.009) / 0.006, 1.0) * (np.abs(t - 0.5) > 0.28)
        col = CAVITY_COLOUR * (1 - gum)[:, None] + GUM * gum[:, None]
        lip = 1 - _smoothstep(depth / 0.004)
        col = col * (1 - lip)[:, None] + self.id.lip * 0.85 * lip[:, None]
        return col * (1 - 0.6 * _smoothstep((depth - 0.008) / 0.035))[:, None]  # darker deeper in

    def _teeth_albedo(self, canon: np.ndarray) -> np.ndarray:
        arch, h = canon[:, 0], canon[:, 1]
        phase = (arch + 1) / 2 * 10
        gap = (1 - np.abs(np.sin(np.pi * phase))) ** 8
        shade = (1 - 0.45 * gap) * (1 - 0.25 * np.abs(arch) ** 2) * (1 - 0.12 * h)
        return TEETH_COLOUR * shade[:, None]

    def _tongue_albedo(self, canon: np.ndarray) -> np.ndarray:
        groove = _smooth_bump(np.abs(canon[:, 0]) / 0.18, 1.0) * (canon[:, 1] > 0)
        return TONGUE_COLOUR * (1 - 0.18 * groove - 0.1 * (canon[:, 2] < -0.3))[:, None]


def _y(y: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(y), y, np.zeros_like(y)], 1)


def _segment_distance(u: np.ndarray, e: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance in (u, e) from points to the segment a-b."""
    p = np.stack([u, e], 1)
    a_, b_ = np.asarray(a), np.asarray(b)
    t = np.clip(((p - a_) @ (b_ - a_)) / np.dot(b_ - a_, b_ - a_), 0.0, 1.0)
    return np.linalg.norm(p - (a_ + t[:, None] * (b_ - a_)), axis=1)


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
    verts_head, canon = head.geometry(expression)
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
            albedo, labels = head.albedo(np.einsum("mk,mkd->md", bary, canon[corners]), head.parts[tri], expression, with_regions=True)
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


# -- trajectories ------------------------------------------------------------------------------
def _swing(t: np.ndarray, centre: float, half_width: float, plateau: float = 0.5) -> np.ndarray:
    """0 -> 1 -> 0 around ``centre`` (1 within ``plateau`` of it, 0 beyond ``half_width``), in timesteps."""
    return _smoothstep((half_width - np.abs(t - centre)) / max(half_width - plateau, 1e-6))


def _background(rng: np.random.Generator, steps: int, top: float = 0.3) -> np.ndarray:
    """Small smooth activity of every coefficient [steps, 6], in [0, top]."""
    t = np.arange(steps) / max(steps, 1)
    amp = rng.uniform(0.0, top, len(EXPRESSION_LABELS))
    freq = rng.uniform(0.5, 1.5, len(EXPRESSION_LABELS))
    phase = rng.uniform(0, 1, len(EXPRESSION_LABELS))
    return amp * (0.5 - 0.5 * np.cos(2 * np.pi * (freq * t[:, None] + phase)))


def _natural_blink(rng: np.random.Generator, track: np.ndarray) -> None:
    """One quick blink of both eyes at a random instant (every sequence blinks, whatever it is doing)."""
    steps = len(track)
    if steps < 4:
        return
    tb = int(rng.integers(1, steps - 1))
    peak = rng.uniform(0.9, 1.0)
    for k in (BLINK_L, BLINK_R):
        track[tb, k] = max(track[tb, k], peak)
        track[tb - 1, k] = max(track[tb - 1, k], 0.35 * peak)
        track[tb + 1, k] = max(track[tb + 1, k], 0.35 * peak)


def _slots(steps: int) -> int:
    return max(1, int(round(steps / FRAMES_PER_SLOT)))


def training_track(rng: np.random.Generator, groups: list[tuple[str, ...]], steps: int) -> np.ndarray:
    """A training trajectory [steps, 6]: each group swings 0 -> ~1 -> 0 in its own slot, over small background activity."""
    t = np.arange(steps, dtype=np.float64)
    track = _background(rng, steps)
    length = steps / len(groups)
    for k, group in enumerate(groups):
        centre = (k + 0.5) * length - 0.5 + (rng.uniform(-0.4, 0.4) if length > 4 else 0.0)
        for name in group:
            shift = int(rng.integers(-1, 2)) if len(group) > 1 and length >= 5 else 0
            c = float(np.clip(np.round(centre + shift), 0, steps - 1))
            i = EXPRESSION_LABELS.index(name)
            track[:, i] = np.maximum(track[:, i], rng.uniform(0.92, 1.0) * _swing(t, c, 0.5 * length + 1.0))
    _natural_blink(rng, track)
    return np.clip(track, 0.0, 1.0)


PARTNERS = {"jaw_open": ("smile", "pucker"), "smile": ("jaw_open",), "brow_raise": ("blink_left", "blink_right"), "blink_left": ("blink_right",), "blink_right": ("blink_left",), "pucker": ("jaw_open",)}


def heldout_track(rng: np.random.Generator, primaries: list[str], steps: int) -> np.ndarray:
    """A held-out trajectory [steps, 6]: slot k swings ``primaries[k]`` (amplitude 0.6-0.95) with a partner (0.3-0.9):
    a common partner of it or any other coefficient, with new timing and new amplitude ratios."""
    t = np.arange(steps, dtype=np.float64)
    track = _background(rng, steps)
    length = steps / len(primaries)
    for k, primary in enumerate(primaries):
        others = [x for x in EXPRESSION_LABELS if x != primary]
        partner = str(rng.choice(PARTNERS[primary])) if rng.random() < 0.5 else str(rng.choice(others))
        centre = (k + 0.5) * length - 0.5 + (rng.uniform(-1.0, 1.0) if length > 4 else 0.0)
        width = 0.5 * length + rng.uniform(0.3, 1.5)
        for name, amp in ((primary, rng.uniform(0.6, 0.95)), (partner, rng.uniform(0.3, 0.9))):
            shift = int(rng.integers(-2, 3)) if length >= 5 else 0
            c = float(np.clip(np.round(centre + shift), 0, steps - 1))
            i = EXPRESSION_LABELS.index(name)
            track[:, i] = np.maximum(track[:, i], amp * _swing(t, c, width))
    _natural_blink(rng, track)
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


@dataclass
class SequencePlan:
    name: str
    training: bool
    expressions: np.ndarray  # [T, 6]
    poses: np.ndarray  # [T, 4, 4]


def plan_sequences(cfg: SyntheticConfig) -> list[SequencePlan]:
    """Every sequence's expression and pose trajectory (training first); no rendering.

    Training sequence i plays slots i * n_slots .. of the seed-permuted TRAINING_PLAN; held-out
    sequences are then clipped to the per-coefficient range of the training codes."""
    rng = np.random.default_rng([cfg.seed, 1])
    pose_rng = np.random.default_rng([cfg.seed, 2])
    steps, n_slots = cfg.timesteps_per_sequence, _slots(cfg.timesteps_per_sequence)
    rows = [list(TRAINING_PLAN[i]) for i in rng.permutation(len(TRAINING_PLAN))]
    flat = [row[j] for row in rows for j in rng.permutation(len(row))]
    yaw = 30.0 if cfg.rig == "monocular" else 20.0
    plans = []
    for i in range(cfg.n_train_sequences):
        groups = [flat[(i * n_slots + k) % len(flat)] for k in range(n_slots)]
        plans.append(SequencePlan(f"train_{i:02d}", True, training_track(rng, groups, steps), head_pose_track(pose_rng, steps, yaw)))
    train = np.concatenate([p.expressions for p in plans])
    lo, hi, tree = train.min(0), train.max(0), cKDTree(train)
    order = [EXPRESSION_LABELS[k] for k in rng.permutation(len(EXPRESSION_LABELS))]
    for i in range(cfg.n_test_sequences):
        primaries = [order[(i * n_slots + k) % len(order)] for k in range(n_slots)]
        if "jaw_open" not in primaries:  # every held-out sequence opens the mouth
            primaries[int(rng.integers(n_slots))] = "jaw_open"
        best = None
        for _ in range(HELDOUT_TRIES):  # redraw until every code is near the training codes
            track = np.clip(heldout_track(rng, primaries, steps), lo, hi)
            far = float(tree.query(track)[0].max())
            if best is None or far < best[0]:
                best = (far, track)
            if far <= HELDOUT_MAX_DISTANCE:
                break
        plans.append(SequencePlan(f"test_{i:02d}", False, best[1], head_pose_track(pose_rng, steps, yaw)))
    return plans


def camera_rig(cfg: SyntheticConfig) -> list[np.ndarray]:
    """Camera-to-world matrices (OpenGL) at distance 1 looking at the head: the training cameras, then the held-out ones."""

    def at(yaw_deg: float, pitch_deg: float) -> np.ndarray:
        y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
        return look_at_c2w(np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)]), np.zeros(3)).numpy()

    if cfg.rig == "monocular":
        train = [at(0.0, 0.0)]
    else:
        yaws = np.linspace(-60.0, 60.0, cfg.n_cameras)
        train = [at(y, 15.0 if i % 2 == 0 else -5.0) for i, y in enumerate(yaws)]
    return train + [at(*view) for view in HELDOUT_VIEWS[cfg.rig][: cfg.n_heldout_cameras]]


def n_training_cameras(cfg: SyntheticConfig) -> int:
    return 1 if cfg.rig == "monocular" else cfg.n_cameras


def splits(cfg: SyntheticConfig) -> dict[str, dict]:
    """Split selectors (docs/subject-format.md): sequences x cameras."""
    train_seq = [f"train_{i:02d}" for i in range(cfg.n_train_sequences)]
    test_seq = [f"test_{i:02d}" for i in range(cfg.n_test_sequences)]
    n = n_training_cameras(cfg)
    train_cams, heldout_cams = list(range(n)), list(range(n, n + cfg.n_heldout_cameras))
    out = {"train": {"sequences": train_seq, "cameras": train_cams}, "test": {"sequences": test_seq, "cameras": train_cams}}
    if heldout_cams:
        out["novel_view"] = {"sequences": train_seq, "cameras": heldout_cams}
        out["novel_view_test"] = {"sequences": test_seq, "cameras": heldout_cams}
    return out


def _png(array: np.ndarray) -> np.ndarray:
    return np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)


def generate_synthetic_subject(out: str | Path, cfg: SyntheticConfig) -> Path:
    """Write a complete subject folder at ``out`` (replaced atomically)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    head = ProceduralHead(cfg.seed, cfg.mesh_subdivisions)
    res = cfg.resolution
    focal = 0.75 * res / (HEAD_HEIGHT * 1.1)  # the head with its hair fills about 70% of the frame height at distance 1
    intrinsics = (focal, focal, res / 2, res / 2)
    rigs = camera_rig(cfg)
    frames = []
    for plan in plan_sequences(cfg):
        seq = plan.name
        for t in range(cfg.timesteps_per_sequence):
            mesh_rel = f"meshes/{seq}/{t:03d}.ply"
            (tmp / mesh_rel).parent.mkdir(parents=True, exist_ok=True)
            head.mesh(plan.expressions[t]).export(tmp / mesh_rel)
            views = render_head(head, plan.expressions[t], plan.poses[t], rigs, intrinsics, (res, res), cfg.supersampling)
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
                        "expression": np.round(plan.expressions[t], 6).tolist(),
                        "head_pose": np.round(plan.poses[t], 10).tolist(),
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
        "splits": splits(cfg),
        "frames": frames,
    }  # fmt: skip
    write_transforms(tmp, transforms)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
