"""Tracking noise: measured from jitter, added where the truth is known, and the errors against it."""

import json

import numpy as np
import pytest

from eavatar.data.subject import load_subject, write_transforms
from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.data.tracking_noise import TrackingNoise, control_errors, head_radius, perturb_training_instants, tracking_jitter

TINY = SyntheticConfig(resolution=24, n_cameras=2, n_heldout_cameras=1, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=6, mesh_subdivisions=3)


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    return load_subject(generate_synthetic_subject(tmp_path_factory.mktemp("noise") / "subject", TINY))


def test_perturbation_is_one_draw_per_instant_on_training_frames_only(subject, tmp_path):
    noise = TrackingNoise(code=0.05, rotation_deg=1.0, translation=0.03)
    noisy = load_subject(perturb_training_instants(subject.root, tmp_path / "noisy", noise, seed=3).parent)
    train = set(subject.split("train").tolist())
    by_instant: dict = {}
    for i in range(subject.num_frames):
        if i not in train:  # test and novel-view frames exact
            np.testing.assert_array_equal(noisy.expressions[i], subject.expressions[i])
            np.testing.assert_allclose(noisy.head_poses[i], subject.head_poses[i], atol=1e-7)
            continue
        assert not np.allclose(noisy.expressions[i], subject.expressions[i])
        by_instant.setdefault((subject.sequences[i], int(subject.timesteps[i])), []).append(i)
    for frames in by_instant.values():  # the cameras of an instant see one head
        assert len(frames) == 2
        np.testing.assert_allclose(noisy.expressions[frames[0]] - subject.expressions[frames[0]], noisy.expressions[frames[1]] - subject.expressions[frames[1]], atol=1e-6)
        np.testing.assert_allclose(noisy.head_poses[frames[0]], noisy.head_poses[frames[1]], atol=1e-6)
    assert noisy.image_paths[0].resolve() == subject.image_paths[0].resolve()
    errors = control_errors(subject, noisy.expressions, noisy.head_poses, np.array(sorted(train)))
    assert 0.02 < errors["code_rms"] < 0.1 and 0.3 < errors["rotation_rms_deg"] < 2.5 and 0.005 < errors["translation_rms"] < 0.08
    exact = control_errors(subject, subject.expressions, subject.head_poses, np.array(sorted(train)))
    assert exact == pytest.approx({"code_rms": 0.0, "rotation_rms_deg": 0.0, "translation_rms": 0.0}, abs=1e-9)


def test_jitter_measures_the_noise_added_to_a_smooth_track(subject, tmp_path):
    """A still head with a slow expression ramp, then i.i.d. noise per frame: the jitter estimate
    finds the noise's size, not the ramp's."""
    meta = json.loads(subject.transforms_path.read_text())
    rng = np.random.default_rng(0)
    camera0 = [f for f in meta["frames"] if f["camera_index"] == 0]
    for f in camera0:
        t = f["timestep_index"]
        f["expression"] = list(np.full(subject.d_exp, 0.05 * t) + rng.normal(0, 0.01, subject.d_exp))
        f["head_pose"] = np.eye(4).tolist()
    meta["frames"] = camera0
    meta["splits"] = {"train": {"frames": list(range(1, len(camera0)))}, "test": {"frames": [0]}}
    for f in camera0:
        for key in ("file_path", "fg_mask_path", "region_path", "mesh_path"):
            if f.get(key):
                f[key] = str((subject.root / f[key]).resolve())
    meta["template_mesh"] = str((subject.root / meta["template_mesh"]).resolve())
    still = load_subject(write_transforms(tmp_path / "still", meta).parent)
    jitter = tracking_jitter(still)
    assert jitter.code == pytest.approx(0.01, rel=0.35)
    assert jitter.rotation_deg == 0 and jitter.translation == 0
    assert head_radius(still) > 0
