"""The synthetic subject: valid, deterministic, and its expressions really change the images."""

import hashlib

import numpy as np
import pytest

from eavatar.data.subject import load_subject
from eavatar.data.synthetic import (
    EXPRESSION_LABELS,
    REGION_LABELS,
    ProceduralHead,
    SyntheticConfig,
    camera_rig,
    generate_synthetic_subject,
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_synthetic_subject(tmp_path_factory.mktemp("synthetic") / "s", SyntheticConfig(**TINY))


def test_writes_a_valid_subject(tiny):
    s = load_subject(tiny)
    assert s.num_frames == 2 * 2 * 3 and tuple(s.expression_labels) == EXPRESSION_LABELS
    assert s.template_mesh is not None and all(p is not None and p.is_file() for p in s.mesh_paths + s.region_paths)
    assert set(s.sequences[i] for i in s.split("train")).isdisjoint(s.sequences[i] for i in s.split("test"))
    assert ((s.expressions >= 0) & (s.expressions <= 1)).all()
    R = s.head_poses[:, :3, :3]
    np.testing.assert_allclose(R.transpose(0, 2, 1) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    assert not (tiny.parent / "s.tmp").exists()


def test_is_deterministic_for_a_seed(tiny, tmp_path):
    assert digest(generate_synthetic_subject(tmp_path / "again", SyntheticConfig(**TINY))) == digest(tiny)
    assert digest(generate_synthetic_subject(tmp_path / "other", SyntheticConfig(**{**TINY, "seed": 1}))) != digest(tiny)


def test_monocular_rig_has_one_camera():
    assert len(camera_rig(SyntheticConfig(rig="monocular"))) == 1
    with pytest.raises(ValueError, match="synthetic.rig"):
        SyntheticConfig(rig="stereo")


@pytest.fixture(scope="module")
def front_views():
    head = ProceduralHead(0, 4)
    res = 64
    f = 150.0
    cam = camera_rig(SyntheticConfig(n_cameras=3))[1]  # the middle camera looks at the face

    def render(**coefficients):
        code = np.array([coefficients.get(k, 0.0) for k in EXPRESSION_LABELS])
        return render_head(head, code, np.eye(4), [cam], (f, f, res / 2, res / 2), (res, res))[0]

    return render


def test_jaw_open_darkens_the_mouth(front_views):
    rgb0, _, regions0 = front_views()
    rgb1, _, _ = front_views(jaw_open=1.0)
    mouth = regions0 == REGION_LABELS["mouth"]
    assert mouth.sum() > 10
    changed = np.abs(rgb1 - rgb0).max(-1) > 0.1
    assert changed[mouth].mean() > 0.2 or changed.sum() > 20
    below = np.zeros_like(mouth)
    rows = np.nonzero(mouth.any(1))[0]
    below[rows.min() : rows.max() + 8] = True
    assert rgb1[below].min() < 0.3  # the dark interior shows


def test_blink_changes_only_around_the_eyes(front_views):
    rgb0, _, regions0 = front_views()
    rgb1, _, _ = front_views(blink_left=1.0, blink_right=1.0)
    changed = np.abs(rgb1 - rgb0).max(-1) > 0.05
    eyes = regions0 == REGION_LABELS["eyes"]
    assert changed[eyes].mean() > 0.3
    assert changed[regions0 == REGION_LABELS["mouth"]].sum() == 0


def test_masks_cover_the_head_and_not_the_border(front_views):
    rgb, coverage, regions = front_views()
    assert coverage[32, 32] == 1.0 and coverage[0].max() == 0.0 and coverage[:, 0].max() == 0.0
    np.testing.assert_allclose(rgb[coverage == 0], 1.0)  # white background
    assert ((regions > 0) == (coverage > 0.5)).mean() > 0.95
