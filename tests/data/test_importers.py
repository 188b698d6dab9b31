"""Importers: each published layout becomes a subject that validates, with the right cameras, poses, codes and splits."""

import json

import imageio.v3 as iio
import numpy as np
from scipy.spatial.transform import Rotation

from eavatar.data.importers import ImportOptions, import_subject
from eavatar.data.importers.common import flame_head_pose
from eavatar.data.subject import load_subject
from tests.data import importer_layouts as L


def assert_proper_rotations(subject):
    R = subject.head_poses[:, :3, :3].astype(np.float64)
    np.testing.assert_allclose(R.transpose(0, 2, 1) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)


def union_and_free(tmp_path, n_cam=3):
    """VHAP's UNION10-style export (no FREE) and the subject's separate FREE export, as GaussianAvatars ships them."""
    union, params = L.vhap_union(tmp_path, n_cam=n_cam)
    free, free_params = L.vhap_export(union.parent, "FREE", n_cam=n_cam)
    return [union, free], params, free_params


def test_vhap_union_plus_free_export(tmp_path):
    sources, params, free_params = union_and_free(tmp_path)
    s = load_subject(import_subject("vhap", sources, tmp_path / "subject"))
    assert s.expression_space == "flame" and s.d_exp == L.N_EXPR + 3 + 6
    assert s.expression_labels[:2] == ["expr_000", "expr_001"] and s.expression_labels[L.N_EXPR : L.N_EXPR + 3] == ["jaw_rx", "jaw_ry", "jaw_rz"]
    assert s.sequence_names() == ["EMO-1", "EXP-2", "EXP-9", "FREE"]
    assert s.splits == {"train": {"sequences": ["EMO-1", "EXP-2", "EXP-9"]}, "test": {"sequences": ["FREE"]}}
    assert sorted(set(s.timesteps[s.frames_of_sequence("EXP-2")])) == [0, 1]  # union timesteps renumbered per sequence
    assert len(s.frames_of_sequence("FREE")) == 3 * 3  # every FREE frame once, though its export lists them in 4 files
    assert_proper_rotations(s)
    i = int(s.frames_of_sequence("EXP-2", camera=1)[1])  # EXP-2, its second instant = union timestep 3
    p = params[3]
    np.testing.assert_allclose(s.expressions[i], np.concatenate([p["expr"][0], p["jaw_pose"][0], p["eyes_pose"][0]]), atol=1e-6)
    R = Rotation.from_rotvec(p["rotation"][0]).as_matrix() @ Rotation.from_rotvec(p["neck_pose"][0]).as_matrix()
    np.testing.assert_allclose(s.head_poses[i][:3, :3], R, atol=1e-6)
    np.testing.assert_allclose(s.head_poses[i][:3, 3], p["translation"][0], atol=1e-6)
    j = int(s.frames_of_sequence("FREE", camera=2)[2])
    np.testing.assert_allclose(s.expressions[j][: L.N_EXPR], free_params[2]["expr"][0], atol=1e-6)


def test_vhap_cameras_stay_opengl_and_cy_is_unflipped(tmp_path):
    sources, _, _ = union_and_free(tmp_path)
    s = load_subject(import_subject("vhap", sources, tmp_path / "subject"))
    cam0 = int(s.frames_of_sequence("EMO-1", camera=0)[0])
    np.testing.assert_allclose(s.c2w[cam0], L.CAM_AT_Z1_GL, atol=1e-9)  # at (0, 0, 1) looking down -z at the origin
    np.testing.assert_allclose(s.intrinsics[cam0], [10.0, 10.0, 4.0, 3.0])  # VHAP stored cy as h - cy = 5


def test_vhap_novel_view_by_serial_and_no_eyes(tmp_path):
    sources, _, _ = union_and_free(tmp_path)
    front, side = L.NERSEMBLE_SERIALS[1], L.NERSEMBLE_SERIALS[2]  # VHAP camera_index 1 and 2
    opts = ImportOptions(protocol="novel-view", test_cameras=(side,), eyes=False)
    s = load_subject(import_subject("vhap", sources, tmp_path / "subject", opts))
    assert s.d_exp == L.N_EXPR + 3 and s.expression_labels[-1] == "jaw_rz"
    assert s.splits["train"] == {"sequences": ["EMO-1", "EXP-2", "EXP-9"], "cameras": [0, 1]}  # FREE stays out of training
    assert s.splits["test"] == {"sequences": ["EMO-1", "EXP-2", "EXP-9"], "cameras": [2]}  # novel view: seen sequences
    doc = json.loads(s.transforms_path.read_text())
    assert doc["source"]["protocol"]["train_cameras"] == sorted([L.NERSEMBLE_SERIALS[0], front])


def test_links_are_relative_and_copy_is_self_contained(tmp_path):
    sources, _, _ = union_and_free(tmp_path)
    linked = load_subject(import_subject("vhap", sources, tmp_path / "linked"))
    assert linked.image_paths[0].is_symlink() and not linked.image_paths[0].readlink().is_absolute()
    copied = load_subject(import_subject("vhap", sources, tmp_path / "copied", ImportOptions(copy=True)))
    assert not copied.image_paths[0].is_symlink() and copied.image_paths[0].read_bytes() == linked.image_paths[0].read_bytes()


def test_exact_pivots_with_a_flame_model_match_the_lbs_chain(tmp_path):
    """With a model file, the head pose is FLAME's root-about-J0 then neck-about-J1 chain, built here as 4x4 products;
    the joints move with VHAP's static_offset, whose first V of its 5143 rows are the model's V vertices."""
    rng = np.random.default_rng(1)
    model = {"v_template": rng.normal(0, 0.1, (6, 3)), "shapedirs": rng.normal(0, 0.01, (6, 3, 300 + L.N_EXPR)), "J_regressor": rng.dirichlet(np.ones(6), 5)}
    np.savez(tmp_path / "flame.npz", **model)
    sources, params, _ = union_and_free(tmp_path)
    s = load_subject(import_subject("vhap", sources, tmp_path / "subject", ImportOptions(flame_model=tmp_path / "flame.npz")))
    p = params[0]
    assert p["static_offset"].shape == (1, 5143, 3)
    v = model["v_template"] + model["shapedirs"][:, :, :300] @ p["shape"] + model["shapedirs"][:, :, 300:] @ p["expr"][0] + p["static_offset"][0, :6]
    J = model["J_regressor"] @ v

    def about(rotvec, pivot):
        T, M = np.eye(4), np.eye(4)
        T[:3, 3] = pivot
        M[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
        return T @ M @ np.linalg.inv(T)

    shift = np.eye(4)
    shift[:3, 3] = p["translation"][0]
    expected = shift @ about(p["rotation"][0], J[0]) @ about(p["neck_pose"][0], J[1])
    np.testing.assert_allclose(s.head_poses[int(s.frames_of_sequence("EMO-1")[0])], expected, atol=1e-6)
    origin = flame_head_pose(p["rotation"][0], p["neck_pose"][0], p["translation"][0], None)
    assert np.abs(origin - expected).max() > 1e-4  # the pivots matter: the test would notice them missing
    J_without_offset = model["J_regressor"] @ (v - p["static_offset"][0, :6])
    without = shift @ about(p["rotation"][0], J_without_offset[0]) @ about(p["neck_pose"][0], J_without_offset[1])
    assert np.abs(without - expected).max() > 1e-5  # and so does the offset


def gha_opts(**kw):
    return ImportOptions(original_resolution=2 * L.GHA_SIZE, **kw)


def test_gha_bfm(tmp_path):
    src, params = L.gha_subject(tmp_path)
    s = load_subject(import_subject("gha", src, tmp_path / "subject", gha_opts(protocol="time")))
    assert s.expression_space == "bfm" and s.d_exp == 64 and s.expression_labels[0] == "exp_000"
    assert s.num_frames == 15 and s.camera_ids() == [0, 1, 2]
    np.testing.assert_allclose(s.c2w[0], L.CAM_AT_Z1_GL, atol=1e-9)  # OpenCV world-to-camera -> OpenGL c2w
    np.testing.assert_allclose(s.intrinsics[0], [1.25, 1.25, 0.5, 0.375] * np.array(L.GHA_SIZE))  # K at 2x rescaled to the image
    assert_proper_rotations(s)
    p = params["0003"]
    i = int(s.frames_of_sequence("031")[3 * 3])
    np.testing.assert_allclose(s.head_poses[i][:3, :3], Rotation.from_rotvec(p["pose"][0, :3]).as_matrix(), atol=1e-6)
    np.testing.assert_allclose(s.expressions[i], p["exp_coeff"][0], atol=1e-6)
    assert sorted(set(s.timesteps[s.split("test")])) == [4]  # no sequence names: the last 20% of the recording
    assert s.mask_paths[0].suffix == ".png" and np.asarray(iio.imread(s.mask_paths[0])).ndim == 2


def test_gha_flame_fits_are_flame_not_bfm(tmp_path):
    """Multiview-3DMM-Fitting's FLAME module saves id 100 and exp 50 + jaw 3 + eyes 6 under BFM's keys."""
    src, params = L.gha_subject(tmp_path, model="flame")
    s = load_subject(import_subject("gha", src, tmp_path / "subject", gha_opts(protocol="time")))
    assert s.expression_space == "flame" and s.d_exp == 59
    assert s.expression_labels[49:53] == ["expr_049", "jaw_rx", "jaw_ry", "jaw_rz"] and s.expression_labels[-1] == "eyes1_rz"
    np.testing.assert_allclose(s.expressions[int(s.frames_of_sequence("031")[6])], params["0002"]["exp_coeff"][0], atol=1e-6)
    doc = json.loads(s.transforms_path.read_text())
    assert doc["source"]["head_space"] == "flame x scale 1.2"
    no_eyes = load_subject(import_subject("gha", src, tmp_path / "no_eyes", gha_opts(protocol="time", eyes=False)))
    assert no_eyes.d_exp == 53 and no_eyes.expression_labels[-1] == "jaw_rz"


def test_gha_padding_is_background_in_every_target(tmp_path):
    """GHA pads ~158 px at each side of a 2048 px image (its crop starts at x = -200 of a 2200 px frame);
    visible_<camera>.jpg records it, and the target there must be the background, not the black padding."""
    from eavatar.data.frames import load_ground_truth

    for mattes in (True, False):  # with GHA's matte (noisy in the padding), and without one
        src, _ = L.gha_subject(tmp_path / str(mattes), mattes=mattes)
        s = load_subject(import_subject("gha", src, tmp_path / f"subject_{mattes}", gha_opts(protocol="time")))
        mask = np.asarray(iio.imread(s.mask_paths[0]))
        pad = L.GHA_PAD
        assert (mask[:, :pad] == 0).all() and (mask[:, -pad:] == 0).all() and (mask[:, pad + 1 : -pad - 1] > 0).all()
        target = load_ground_truth(s, 0, [1.0, 1.0, 1.0]).numpy()
        np.testing.assert_array_equal(target[:, :pad], 1.0)  # the background, not the zero padding
        np.testing.assert_allclose(target[:, pad + 1 : -pad - 1], 200 / 255, atol=0.05)  # the picture itself
        x0, y0, x1, y1 = s.valid_boxes[0]  # and evaluation leaves it out (eavatar.pipeline.evaluate.counted_pixels)
        assert abs(x0 - pad) <= 1 and abs(x1 - (L.GHA_SIZE - pad)) <= 1 and (y0, y1) == (0, L.GHA_SIZE)


def test_gha_sequence_ranges_are_taken_on_trust(tmp_path):
    """Stock GHA writes no FREE and no boundaries: ranges naming one work, with a warning that says so."""
    src, _ = L.gha_subject(tmp_path)
    opts = gha_opts(sequence_ranges=(("EXP-1", 0, 2), ("FREE", 3, 4)))
    s = load_subject(import_subject("gha", src, tmp_path / "subject", opts))
    assert s.splits["test"] == {"sequences": ["FREE"]} and sorted(set(s.timesteps[s.split("test")])) == [0, 1]
    warnings = json.loads(s.transforms_path.read_text())["source"]["warnings"]
    assert len(warnings) == 1 and "no FREE and no sequence boundaries" in warnings[0]


def test_insta(tmp_path):
    src, exps = L.insta_actor(tmp_path)
    s = load_subject(import_subject("insta", src, tmp_path / "subject"))
    assert s.d_exp == L.N_EXPR and s.expression_labels[-1] == f"expr_{L.N_EXPR - 1:03d}"
    np.testing.assert_allclose(s.expressions, exps, atol=1e-6)
    np.testing.assert_allclose(s.c2w[0], L.CAM_AT_Z1_GL, atol=1e-9)  # OpenCV c2w -> OpenGL
    np.testing.assert_allclose(s.head_poses, np.broadcast_to(np.eye(4), (10, 4, 4)))
    assert list(s.split("test")) == [8, 9] and list(s.split("train")) == list(range(8))
    assert np.asarray(iio.imread(s.mask_paths[0])).shape == (8, 8)  # the alpha matte


def test_imavatar(tmp_path):
    src, planted = L.imavatar_subject(tmp_path)
    s = load_subject(import_subject("imavatar", src, tmp_path / "subject", ImportOptions(test_fraction=0.4)))
    assert s.sequence_names() == ["MVI_1810", "MVI_1811"] and s.d_exp == 50 + 3 + 6
    np.testing.assert_allclose(s.c2w[0], L.CAM_AT_Z1_GL, atol=1e-9)
    np.testing.assert_allclose(s.intrinsics[0], [16.0, 16.0, 4.0, 3.0])  # [-2, 2, .5, .375] x 8 px, fx un-negated
    exp, pose = planted[("MVI_1811", 2)]
    i = int(s.frames_of_sequence("MVI_1811")[1])
    np.testing.assert_allclose(s.expressions[i], np.concatenate([exp, pose[6:9], pose[9:15]]), atol=1e-6)
    assert_proper_rotations(s)
    test = s.split("test")
    assert len(test) == 4 and set(s.timesteps[test]) == {3, 4}  # the last 40% of each video


def test_imavatar_held_out_video(tmp_path):
    src, _ = L.imavatar_subject(tmp_path)
    s = load_subject(import_subject("imavatar", src, tmp_path / "subject", ImportOptions(test_sequences=("MVI_1811",))))
    assert s.splits == {"train": {"sequences": ["MVI_1810"]}, "test": {"sequences": ["MVI_1811"]}}
