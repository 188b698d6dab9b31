"""The synthetic subject: valid, deterministic, expressions covered in training, and its
expressions really change the images and the 3D shape (mouth cavity, teeth, tongue, lids)."""

import hashlib

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from eavatar.data.subject import load_subject
from eavatar.data.synthetic import (
    BLINK_L,
    BLINK_R,
    BROW,
    CAVITY,
    EXPRESSION_LABELS,
    HELDOUT_MAX_DISTANCE,
    JAW,
    LID,
    PUCKER,
    REGION_LABELS,
    SKIN,
    SMILE,
    TEETH,
    TONGUE,
    ProceduralHead,
    SyntheticConfig,
    camera_rig,
    generate_synthetic_subject,
    plan_sequences,
    render_head,
)

TINY = dict(resolution=32, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=4)


def digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def code(**coefficients) -> np.ndarray:
    return np.array([coefficients.get(k, 0.0) for k in EXPRESSION_LABELS])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_synthetic_subject(tmp_path_factory.mktemp("synthetic") / "s", SyntheticConfig(**TINY))


def test_writes_a_valid_subject(tiny):
    s = load_subject(tiny)
    assert s.num_frames == (2 + 1) * 2 * 3 and tuple(s.expression_labels) == EXPRESSION_LABELS  # 2 training cameras + 1 held out
    assert s.template_mesh is not None and all(p is not None and p.is_file() for p in s.mesh_paths + s.region_paths)
    assert ((s.expressions >= 0) & (s.expressions <= 1)).all()
    R = s.head_poses[:, :3, :3]
    np.testing.assert_allclose(R.transpose(0, 2, 1) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    assert not (tiny.parent / "s.tmp").exists()
    # the template is the whole neutral head, mouth interior and lids included (Gaussians can be seeded there)
    assert len(trimesh.load(s.template_mesh, process=False).vertices) == ProceduralHead(0, TINY["mesh_subdivisions"]).n_vertices


def test_splits_are_sequences_times_cameras(tiny):
    s = load_subject(tiny)
    assert set(s.splits) == {"train", "test", "novel_view", "novel_view_test"}
    frames = {name: set(s.split(name).tolist()) for name in s.splits}
    seqs = {name: {s.sequences[i] for i in f} for name, f in frames.items()}
    cams = {name: {int(s.camera_indices[i]) for i in f} for name, f in frames.items()}
    assert seqs["train"] == seqs["novel_view"] == {"train_00"} and seqs["test"] == seqs["novel_view_test"] == {"test_00"}
    assert cams["train"] == cams["test"] == {0, 1} and cams["novel_view"] == cams["novel_view_test"] == {2}
    assert sum(len(f) for f in frames.values()) == s.num_frames == len(set().union(*frames.values()))  # a partition


def test_is_deterministic_for_a_seed(tiny, tmp_path):
    assert digest(generate_synthetic_subject(tmp_path / "again", SyntheticConfig(**TINY))) == digest(tiny)
    assert digest(generate_synthetic_subject(tmp_path / "other", SyntheticConfig(**{**TINY, "seed": 1}))) != digest(tiny)


def test_rigs_and_their_heldout_cameras():
    assert len(camera_rig(SyntheticConfig(rig="monocular", n_heldout_cameras=0))) == 1
    assert len(camera_rig(SyntheticConfig(rig="monocular"))) == 2
    rig = camera_rig(SyntheticConfig(n_cameras=6, n_heldout_cameras=2))
    assert len(rig) == 8
    heldout = [c[:3, 3] for c in rig[6:]]
    assert all(min(np.linalg.norm(h - c[:3, 3]) for c in rig[:6]) > 0.15 for h in heldout)  # new viewpoints
    with pytest.raises(ValueError, match="synthetic.rig"):
        SyntheticConfig(rig="stereo")
    with pytest.raises(ValueError, match="n_heldout_cameras"):
        SyntheticConfig(n_heldout_cameras=9)


# -- expression coverage (trajectories only: no rendering) ----------------------------------------
PAIRS = [(JAW, SMILE), (BROW, BLINK_L), (BROW, BLINK_R), (BLINK_L, BLINK_R), (PUCKER, JAW)]


@pytest.mark.parametrize("seed", [0, 1, 2, 298])
def test_training_covers_every_coefficient_and_heldout_stays_inside(seed):
    plans = plan_sequences(SyntheticConfig(seed=seed))
    train = [p.expressions for p in plans if p.training]
    test = [p.expressions for p in plans if not p.training]
    T, H = np.concatenate(train), np.concatenate(test)
    for k, name in enumerate(EXPRESSION_LABELS):
        assert sum(s[:, k].max() >= 0.9 for s in train) >= 4, name  # full swings, in several sequences
        assert (T[:, k] > 0.5).mean() >= 0.15, name
        assert H[:, k].max() >= 0.5, name  # the held-out set exercises every coefficient too
    assert (T[:, JAW] > 0.5).mean() >= 0.25
    for a, b in PAIRS:  # the common pairs are trained together
        assert sum(((s[:, a] > 0.5) & (s[:, b] > 0.5)).any() for s in train) >= 2, (EXPRESSION_LABELS[a], EXPRESSION_LABELS[b])
    # held out: new trajectories inside the training range, near the training codes (self-reenactment, not extrapolation)
    assert (H >= T.min(0)).all() and (H <= T.max(0)).all()
    assert all((s[:, JAW] > 0.5).any() for s in test)
    d_nn = cKDTree(T).query(H)[0]
    spread = np.sqrt(((T - T.mean(0)) ** 2).sum(1).mean())
    assert d_nn.max() <= HELDOUT_MAX_DISTANCE < 0.8 * spread
    assert np.median(d_nn) < 0.4 * spread
    assert all(np.abs(h - t).max() > 0.2 for h in test for t in train)  # new trajectories, not copies


def test_seeds_are_different_people():
    a, b = ProceduralHead(0, 4), ProceduralHead(1, 4)
    # proportions: the neutral surfaces differ (head units; the head is 0.22 tall)
    assert np.abs(a._neutral(a.skin_u, a.skin_e) - b._neutral(a.skin_u, a.skin_e)).mean() > 0.002
    assert cKDTree(b.neutral).query(a.neutral)[0].mean() > 0.001
    colours = []
    for h in (a, b):
        skin = np.zeros(h.n_vertices, bool)
        skin[h.faces[h.parts == SKIN].ravel()] = True
        colours.append(np.asarray(h.mesh(code()).visual.vertex_colors[skin, :3], float).mean(0) / 255)
    assert np.abs(colours[0] - colours[1]).max() > 0.03
    np.testing.assert_array_equal(ProceduralHead(0, 4).neutral, a.neutral)


# -- the geometry of the details ------------------------------------------------------------------
@pytest.fixture(scope="module")
def head():
    return ProceduralHead(0, 4)


def first_hit(head, expression, origin, target):
    """(part, hit point) of the ray from ``origin`` toward ``target`` (head space)."""
    vertices = head.geometry(expression)[0]
    mesh = trimesh.Trimesh(vertices, head.faces, process=False)
    direction = (np.asarray(target) - origin) / np.linalg.norm(np.asarray(target) - origin)
    tri, _, loc = mesh.ray.intersects_id(np.asarray([origin], float), direction[None], multiple_hits=False, return_locations=True)
    return int(head.parts[tri[0]]), loc[0]


def lip_centre(head, expression):
    v = head.geometry(expression)[0]
    mid = np.argmin(np.abs(head.slit_u))
    return v[head.upper_edge[mid]], v[head.lower_edge[mid]]


def test_open_mouth_shows_a_cavity_teeth_and_tongue_set_back_in_depth(head):
    upper, lower = lip_centre(head, code(jaw_open=1.0))
    assert upper[1] - lower[1] > 0.025  # the lips part
    closed = lip_centre(head, code())
    np.testing.assert_allclose(closed[0], closed[1], atol=1e-12)  # and meet when the jaw is closed
    inside = 0.5 * (upper + lower)
    parts = set()
    for dx, dy in [(0.0, 0.0), (0.0, 0.008), (0.0, -0.008), (0.008, 0.0), (0.0, 0.0115), (0.0, -0.0095)]:
        for cam in ([0.0, 0.0, 1.0], [0.3, 0.3, 0.9], [-0.5, -0.1, 0.85]):  # several viewpoints: parallax, not a painted slit
            part, hit = first_hit(head, code(jaw_open=1.0), np.asarray(cam), inside + [dx, dy, 0.0])
            if part != SKIN:
                parts.add(part)
                assert hit[2] < upper[2] - 0.003  # behind the lips
    assert {CAVITY, TEETH, TONGUE} <= parts
    assert first_hit(head, code(), np.array([0.0, 0.0, 1.0]), closed[0])[0] == SKIN  # closed lips hide all of it


@pytest.mark.parametrize("jaw", [0.0, 1.0])
def test_skin_and_mouth_pocket_form_one_closed_surface(head, jaw):
    """No hole to see through into the head: the pocket hangs from the lip edges and is closed at the corners."""
    vertices = head.geometry(code(jaw_open=jaw, smile=0.5, pucker=0.3))[0]
    shell = trimesh.Trimesh(vertices, head.faces[(head.parts == SKIN) | (head.parts == CAVITY)], process=False)
    assert shell.is_watertight and shell.is_winding_consistent and shell.volume > 0
    for lo, hi in (*head.teeth_ranges, head.tongue_range):
        part = trimesh.Trimesh(vertices[lo:hi], head.faces[(head.faces >= lo).all(1) & (head.faces < hi).all(1)] - lo, process=False)
        assert part.is_watertight and part.volume > 0


def test_upper_teeth_stay_with_the_skull_lower_teeth_and_tongue_follow_the_jaw(head):
    v0, v1 = head.geometry(code())[0], head.geometry(code(jaw_open=1.0))[0]
    (u0, u1), (l0, l1) = head.teeth_ranges
    np.testing.assert_array_equal(v0[u0:u1], v1[u0:u1])
    assert np.linalg.norm(v1[l0:l1] - v0[l0:l1], axis=1).min() > 0.01
    t0, t1 = head.tongue_range
    assert np.linalg.norm(v1[t0:t1] - v0[t0:t1], axis=1).min() > 0.005
    lip_z = lip_centre(head, code())[0][2]
    for lo, hi in (*head.teeth_ranges, head.tongue_range):
        assert v0[lo:hi, 2].max() < lip_z - 0.004  # inside the mouth


def test_closed_lids_cover_the_eyes(head):
    I = head.id
    centre = np.array([np.cos(I.eye_e) * np.sin(I.eye_u), np.sin(I.eye_e), np.cos(I.eye_e) * np.cos(I.eye_u)])
    eye = head.geometry(code())[0][np.argmin(np.linalg.norm(head.skin_dirs - centre, axis=1))]
    camera = eye + 0.5 * centre
    assert first_hit(head, code(), camera, eye)[0] == SKIN  # the open eye: the eyeball
    assert first_hit(head, code(blink_left=1.0), camera, eye)[0] == LID
    assert first_hit(head, code(blink_right=1.0), camera, eye)[0] == SKIN  # the other eye's lid


def test_brow_raise_creases_the_forehead_and_smile_bulges_the_cheeks():
    head = ProceduralHead(0, 5)  # the default level: rows dense enough for the wrinkles
    v0 = head.geometry(code())[0][: head.n_skin]
    d = head.skin_dirs
    u, e = head.skin_u, head.skin_e
    forehead = (np.abs(u) < 0.3) & (e > head.id.brow_e + 0.1) & (e < head.id.hairline - 0.06)
    radial = ((head.geometry(code(brow_raise=1.0))[0][: head.n_skin] - v0) * d).sum(1)
    grooves = head._wrinkles(u, e)[1]
    assert radial[forehead & (grooves < 0.1)].mean() - radial[forehead & (grooves > 0.8)].mean() > 0.0009  # creases in 3D
    cheek = np.hypot(np.abs(u) - 0.5, e + 0.12) < 0.08
    assert ((head.geometry(code(smile=1.0))[0][: head.n_skin] - v0) * d).sum(1)[cheek].mean() > 0.002


# -- rendered views --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def front_views(head):
    res = 64
    f = 150.0
    cam = camera_rig(SyntheticConfig(n_cameras=3, n_heldout_cameras=0))[1]  # the middle camera looks at the face

    def render(**coefficients):
        return render_head(head, code(**coefficients), np.eye(4), [cam], (f, f, res / 2, res / 2), (res, res))[0]

    return render


def test_jaw_open_shows_dark_interior_and_teeth_labelled_mouth(head):
    res, f = 64, 450.0
    cam = camera_rig(SyntheticConfig(n_cameras=3, n_heldout_cameras=0))[1]
    mouth_y = lip_centre(head, code())[0][1]

    def render(**coefficients):  # a close-up of the mouth
        return render_head(head, code(**coefficients), np.eye(4), [cam], (f, f, res / 2, res / 2 + f * mouth_y), (res, res))[0]

    rgb0, _, regions0 = render()
    rgb1, _, regions1 = render(jaw_open=1.0)
    mouth0, mouth1 = regions0 == REGION_LABELS["mouth"], regions1 == REGION_LABELS["mouth"]
    assert mouth0.sum() > 10 and mouth1.sum() > 1.5 * mouth0.sum()  # the interior is mouth too
    inner = mouth1 & (rgb1.max(-1) < 0.25)
    teeth = mouth1 & (rgb1.min(-1) > 0.7)
    assert inner.sum() > 10 and teeth.sum() >= 2
    changed = np.abs(rgb1 - rgb0).max(-1) > 0.1
    assert changed[mouth0].mean() > 0.2


def test_blink_changes_only_around_the_eyes(front_views):
    rgb0, _, regions0 = front_views()
    rgb1, _, regions1 = front_views(blink_left=1.0, blink_right=1.0)
    changed = np.abs(rgb1 - rgb0).max(-1) > 0.05
    eyes = regions0 == REGION_LABELS["eyes"]
    assert changed[eyes].mean() > 0.3
    assert changed[regions0 == REGION_LABELS["mouth"]].sum() == 0
    assert (regions1[eyes] == REGION_LABELS["eyes"]).mean() > 0.9  # the lids are labelled eyes


def test_masks_cover_the_head_and_not_the_border(front_views):
    rgb, coverage, regions = front_views()
    assert coverage[32, 32] == 1.0 and coverage[0].max() == 0.0 and coverage[:, 0].max() == 0.0
    np.testing.assert_allclose(rgb[coverage == 0], 1.0)  # white background
    assert ((regions > 0) == (coverage > 0.5)).mean() > 0.95
