"""Expression accuracy by re-tracking (AED / AKD-like) on an excerpt of a real clip:
a frame against itself scores 0, against a neutral frame worse than its neighbour does, and a
frame without a face is counted as a tracking failure."""

import imageio.v3 as iio
import numpy as np
import pytest

from eavatar.data.face_tracker import MODEL_ENV, FaceModelMissing, FaceTracker, find_face_landmarker
from eavatar.metrics.retrack import RetrackMeter, expression_distance, summarise_retrack
from tests.shared_data import shared_path

NEUTRAL, OPEN = 0, (99, 100, 101)  # liveportrait_d10: mouth closed at frame 0, jawOpen about 0.8 at 100


@pytest.fixture(scope="module")
def clip() -> dict[int, np.ndarray]:
    """Frames 0 and 99-101 of liveportrait_d10 (512 px)."""
    path = shared_path("data", "videos", "liveportrait_d10.mp4")
    frames = {}
    for i, frame in enumerate(iio.imiter(path, plugin="pyav")):
        if i in (NEUTRAL, *OPEN):
            frames[i] = np.ascontiguousarray(frame[..., :3])
        if i >= max(OPEN):
            break
    return frames


@pytest.fixture(scope="module")
def tracker():
    try:
        model = find_face_landmarker()
    except FaceModelMissing:
        model = shared_path("models", "face_landmarker.task")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODEL_ENV, str(model))
        with FaceTracker(video=False) as t:
            yield t


def meter_over(tracker, clip, pred_of, neutral=None) -> RetrackMeter:
    meter = RetrackMeter(tracker)
    for t, i in enumerate(OPEN):
        meter.add("d10", 0, t, pred_of(i), clip[i], neutral)
    return meter


def test_frame_against_itself_scores_zero(tracker, clip):
    track = tracker.track(clip[100])
    assert track.landmarks.shape == (478, 3) and track.blendshapes.shape == (52,) and tracker.labels[0] == "_neutral"
    assert set(expression_distance(track, track, (512, 512), tracker.labels).values()) == {0.0}
    summary = summarise_retrack(meter_over(tracker, clip, lambda i: clip[i]).rows)
    assert summary["retrack_frames"] == 3 and summary["retrack_failed_render"] == summary["retrack_failed_gt"] == 0
    assert summary["aed"] == summary["akd"] == summary["mouth_akd"] == 0.0 and summary["aed_rel"] == 0.0
    assert summary["aed_gt"] > 0 and summary["akd_gt"] > 0  # consecutive ground-truth frames differ


def test_neutral_frame_scores_worse_than_the_previous_frame(tracker, clip):
    summary = summarise_retrack(meter_over(tracker, clip, lambda i: clip[NEUTRAL]).rows)
    assert summary["retrack_frames"] == 3
    assert summary["aed"] > 0.03 and summary["aed_rel"] > 2 and summary["akd_rel"] > 2
    jaw = tracker.labels.index("jawOpen")
    assert tracker.track(clip[100]).blendshapes[jaw] - tracker.track(clip[NEUTRAL]).blendshapes[jaw] > 0.5


def test_share_of_the_neutral_renders_error():
    """aed_vs_neutral: 0 for a render that is the ground truth, 1 for one that stays at the neutral frame."""
    rows = [{"aed": 0.02, "aed_neutral": 0.08}, {"aed": 0.04, "aed_neutral": 0.04}, {"aed": 0.5, "aed_neutral": None}]
    assert summarise_retrack(rows)["aed_vs_neutral"] == pytest.approx(0.06 / 0.12)
    assert summarise_retrack(rows[2:])["aed_vs_neutral"] is None


def test_expressive_frames_against_the_neutral_render(tracker, clip):
    perfect = summarise_retrack(meter_over(tracker, clip, lambda i: clip[i], neutral=clip[NEUTRAL]).rows)
    stuck = summarise_retrack(meter_over(tracker, clip, lambda i: clip[NEUTRAL], neutral=clip[NEUTRAL]).rows)
    assert perfect["aed_neutral"] > 0.03 and perfect["aed_vs_neutral"] == 0.0
    assert stuck["aed_vs_neutral"] == pytest.approx(1.0) and stuck["aed_neutral"] == perfect["aed_neutral"]


def test_frame_without_a_face_is_a_counted_failure(tracker, clip):
    blank = np.full_like(clip[100], 128)
    meter = RetrackMeter(tracker)
    rows = [
        meter.add("d10", 0, 0, clip[99], clip[99]),
        meter.add("d10", 0, 1, blank, clip[100]),  # the render has no face
        meter.add("d10", 0, 2, clip[101], blank),  # the ground truth has none
        meter.add("d10", 0, 3, clip[101], clip[101]),  # its predecessor's ground truth failed: no normaliser
    ]
    assert [r["retrack"] for r in rows] == ["ok", "render_failed", "gt_failed", "ok"]
    assert rows[1]["aed"] is None and rows[1]["aed_gt"] is not None and rows[2]["aed"] is None and rows[3]["aed_gt"] is None
    summary = summarise_retrack(meter.rows)
    assert (summary["retrack_frames"], summary["retrack_failed_render"], summary["retrack_failed_gt"]) == (2, 1, 1)


def test_summary_skips_missing_values_and_counts_failures():
    rows = [
        {"aed": 0.1, "akd": 0.2, "aed_gt": None, "akd_gt": None, "retrack": "ok"},
        {"aed": 0.3, "akd": 0.4, "aed_gt": 0.1, "akd_gt": 0.1, "retrack": "ok"},
        {"aed": None, "akd": None, "aed_gt": None, "akd_gt": None, "retrack": "both_failed"},
    ]
    s = summarise_retrack(rows)
    assert (s["retrack_frames"], s["retrack_failed_render"], s["retrack_failed_gt"]) == (2, 1, 1)
    assert s["aed"] == pytest.approx(0.2) and s["aed_rel"] == pytest.approx(2.0) and s["akd_rel"] == pytest.approx(3.0)
    assert s["mouth_akd"] is None
    assert summarise_retrack(rows[:1])["aed_rel"] is None  # no consecutive pair: no normaliser, not 0
