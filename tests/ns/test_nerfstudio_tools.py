"""nerfstudio's tools on an eavatar run, without training one: the viewer's first camera, and the
two tools that cannot handle an avatar (ns-export gaussian-splat, ns-render camera-path), which
must stop before loading anything and name the eavatar command to use instead."""

from __future__ import annotations

import contextlib
import subprocess

import numpy as np
import pytest

from eavatar.data.subject import load_subject
from eavatar.data.synthetic import generate_synthetic_subject
from eavatar.ns.tools import UnsupportedTool, unsupported_tool
from eavatar.ns.viewer import FaceTheHead, HeadView, front_view
from tests.ns.conftest import TINY_SUBJECT, ns_script


@pytest.fixture(scope="module")
def subject_dir(tmp_path_factory):
    return generate_synthetic_subject(tmp_path_factory.mktemp("tools") / "subject", TINY_SUBJECT)


@pytest.fixture(scope="module")
def run_config(subject_dir):
    """The config.yml ``ns-train eavatar`` writes (no checkpoint: the refused tools never get that far)."""
    from eavatar.ns.method import eavatar_trainer_config

    cfg = eavatar_trainer_config()
    cfg.pipeline.datamanager.dataparser.data = subject_dir
    cfg.output_dir, cfg.experiment_name, cfg.timestamp = subject_dir.parent / "outputs", "tiny", "run"
    cfg.save_config()
    return cfg.get_base_dir() / "config.yml"


def test_front_view_faces_the_head(subject_dir):
    subject = load_subject(subject_dir)
    view = front_view(subject)
    pose = subject.head_poses[subject.split("train")[0]]
    towards_camera = np.subtract(view.position, view.look_at)
    distance = np.linalg.norm(towards_camera)
    np.testing.assert_allclose(towards_camera / distance, pose[:3, 2], atol=1e-6)  # from the face's side (head +z)
    np.testing.assert_allclose(view.up, pose[:3, 1], atol=1e-6)  # head up (y), not world z
    # as far as the training cameras and close to the frontal one (yaw 0), whose field of view it has
    cams = subject.c2w[subject.split("train"), :3, 3]
    frontal = cams[np.argmax(cams @ pose[:3, 2])]
    assert abs(distance - np.linalg.norm(frontal - view.look_at)) < 0.05 * distance
    cosine = float(np.dot(frontal - view.look_at, towards_camera) / (np.linalg.norm(frontal - view.look_at) * distance))
    assert cosine > np.cos(np.radians(20))
    fy, h = subject.intrinsics[0, 1], subject.image_sizes[0, 1]
    assert view.fov == pytest.approx(2 * np.arctan(h / (2 * fy)))


class FakeServer:
    """viser's server as far as FaceTheHead uses it (scene up direction, client-connect callbacks)."""

    def __init__(self):
        self.up, self.connect, self.scene = None, [], self

    def set_up_direction(self, up):
        self.up = up

    def on_client_connect(self, cb):
        self.connect.append(cb)


class FakeClient:
    def __init__(self):
        self.camera = type("Camera", (), {})()  # takes attribute writes, as viser's CameraHandle

    def atomic(self):
        return contextlib.nullcontext()


def test_face_the_head_sets_the_up_direction_and_turns_each_new_client(subject_dir):
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO as scale

    control = FaceTheHead(HeadView(position=(0.0, 0.1, 1.0), look_at=(0.0, 0.1, 0.0), up=(0.0, 1.0, 0.0), fov=0.3))
    viewer, server = type("Viewer", (), {})(), FakeServer()
    viewer.viser_server = server
    control._setup(viewer)  # what nerfstudio's Viewer does with every ViewerControl of the pipeline
    assert server.up == (0.0, 1.0, 0.0) and server.connect == [control.face_the_head]
    client = FakeClient()
    server.connect[0](client)
    assert client.camera.position == pytest.approx((0.0, 0.1 * scale, 1.0 * scale))  # viser units
    assert client.camera.look_at == pytest.approx((0.0, 0.1 * scale, 0.0))
    assert client.camera.up_direction == (0.0, 1.0, 0.0) and client.camera.fov == 0.3


def test_ns_export_gaussian_splat_stops_before_loading_and_names_eavatar_export(run_config, subject_dir, tmp_path):
    out = tmp_path / "exports"
    run = subprocess.run([ns_script("ns-export"), "gaussian-splat", "--load-config", str(run_config), "--output-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    avatar = run_config.parent / "avatar.pt"
    assert f"eavatar export --avatar {avatar} --out {out / 'splat.ply'}" in run.stderr
    assert f"eavatar export --avatar {avatar} --data {subject_dir} --frame 0" in run.stderr
    assert "Traceback" not in run.stderr and "Loading latest checkpoint" not in run.stdout  # a message, before loading anything
    assert not (out / "splat.ply").exists()


def test_ns_render_camera_path_stops_before_loading_and_names_eavatar_render(run_config, subject_dir, tmp_path):
    from nerfstudio.scripts.render import RenderCameraPath

    tool = RenderCameraPath(load_config=run_config, camera_path_filename=tmp_path / "camera_path.json", output_path=tmp_path / "renders" / "path.mp4")
    with pytest.raises(UnsupportedTool) as err:
        tool.main()  # what `ns-render camera-path` runs
    message = str(err.value)
    assert "no expression track" in message
    assert f"eavatar render --avatar {run_config.parent / 'avatar.pt'} --data {subject_dir} --out {tmp_path / 'renders'}" in message
    assert isinstance(err.value, SystemExit) and err.value.code == message  # printed to stderr, exit status 1, no traceback


def test_only_the_unsupported_tools_are_refused(run_config):
    from nerfstudio.scripts.exporter import ExportCameraPoses, ExportGaussianSplat
    from nerfstudio.scripts.render import RenderInterpolated

    def called_by(tool):
        self = tool  # noqa: F841 - what unsupported_tool looks for on the stack, as in the tool's main()
        return unsupported_tool()

    assert called_by(ExportGaussianSplat(load_config=run_config, output_dir=run_config.parent)) is not None
    assert called_by(ExportCameraPoses(load_config=run_config, output_dir=run_config.parent)) is None
    assert called_by(RenderInterpolated(load_config=run_config)) is None
    assert unsupported_tool() is None
