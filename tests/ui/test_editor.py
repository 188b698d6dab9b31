"""The expression editor behind notebook 02: grouping, presets, rendering, widgets, saving."""

import numpy as np
import pytest
import torch
from plyfile import PlyData

from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
from eavatar.data.expression_labels import group_labels
from eavatar.ui.editor import ExpressionEditor, build_widget, render_threads
from tests.avatar.conftest import make_avatar


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    cfg = SyntheticConfig(resolution=32, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)
    subject_dir = generate_synthetic_subject(tmp_path_factory.mktemp("ed") / "s", cfg)
    from eavatar.data.subject import load_subject

    subject = load_subject(subject_dir)
    avatar = make_avatar(n=300, d_exp=6)
    return ExpressionEditor(avatar, subject, torch.eye(4), torch.ones(3), size=48)


def test_labels_are_grouped_by_face_region():
    groups = group_labels(["jaw_open", "smile", "brow_raise", "blink_left", "eyeSquintLeft", "noseSneerLeft", "tongueOut"])
    assert groups == {
        "brows": ["brow_raise"],
        "eyes": ["blink_left", "eyeSquintLeft"],
        "jaw": ["jaw_open"],
        "mouth": ["smile"],
        "nose": ["noseSneerLeft"],
        "other": ["tongueOut"],
    }


def test_sliders_change_the_image(editor):
    editor.preset("neutral")
    before = editor.render()
    assert before.shape == (48, 48, 3) and before.dtype == np.uint8
    editor.set("jaw_open", 1.0)
    assert np.abs(editor.render().astype(int) - before).max() > 0
    with pytest.raises(KeyError, match="unknown expression 'tongue'"):
        editor.set("tongue", 1.0)


def test_presets(editor):
    train = editor.subject.expressions[editor.subject.split("train")]
    label = editor.labels[int(train.max(0).argmax())]  # a small subject's few sequences drive only some coefficients
    editor.preset(f"max:{label}")
    assert editor.state.expression[editor.labels.index(label)] == pytest.approx(float(train.max()))
    assert editor.state.expression.count_nonzero() == 1
    editor.preset(editor.presets()[-1])  # a test frame
    assert editor.state.expression.shape == (6,)
    with pytest.raises(ValueError, match="unknown preset"):
        editor.preset("happy")


def test_widget_slider_redraws_and_saves(editor, tmp_path):
    panel, controls = build_widget(editor, tmp_path)
    editor.preset("neutral")
    controls["jaw_open"].value = 0.0
    first = controls["image"].value
    controls["jaw_open"].value = 1.0
    assert controls["image"].value != first
    controls["camera orbit"].value = 40.0
    controls["play"].value = 2  # cross-reenactment frame 2 of the chosen sequence
    assert controls["smile"].value == pytest.approx(float(editor.state.expression[1]), abs=0.01)
    for kind in ("image", "ply"):
        controls[f"save {kind}"].click()
    assert (tmp_path / "current.png").stat().st_size > 0
    assert len(PlyData.read(str(tmp_path / "current.ply"))["vertex"]) == 300


def test_video_of_a_track(editor, tmp_path):
    path = editor.save_video(tmp_path / "track.mp4", editor.track(editor.subject.sequence_names()[0]))
    assert path.stat().st_size > 0


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (4, 3), (16, 4)])
def test_render_threads_leave_a_core_for_the_browser(monkeypatch, cores, threads):
    monkeypatch.setattr("eavatar.ui.editor.os.cpu_count", lambda: cores)
    assert render_threads() == threads
