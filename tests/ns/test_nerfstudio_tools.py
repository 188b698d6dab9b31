"""nerfstudio's own tools on an ``ns-train eavatar`` run: eval_setup (ns-viewer, ns-eval), the
viewer's first camera, and the two tools that cannot handle an avatar (ns-export gaussian-splat,
ns-render camera-path), which must stop early and name the eavatar command to use."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from eavatar.avatar.checkpoint import load_avatar
from eavatar.avatar.drive import render_subject_frame
from eavatar.data.subject import load_subject
from eavatar.ns.tools import UnsupportedTool, unsupported_tool
from eavatar.ns.viewer import FaceTheHead, HeadView, front_view
from tests.ns.conftest import ns_script


def test_checkpoints_load_weights_only(ns_run):
    """torch's default (weights-only) loading, which every nerfstudio tool uses, accepts the checkpoints."""
    checkpoints = sorted((ns_run.config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoints
    for path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert isinstance(state["step"], int) and "pipeline" in state


def test_eval_setup_loads_the_run_and_renders_as_our_own_renderer(ns_run, loaded):
    from eavatar.ns.model import EAvatarModel

    config, pipeline, checkpoint, step = loaded
    assert isinstance(pipeline.model, EAvatarModel)
    saved = sorted((ns_run.config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoint.name == saved[-1].name == f"step-{step:09d}.ckpt"  # the latest
    # the avatar nerfstudio loaded is the one the trainer exported: same frame, same pixels
    avatar, _ = load_avatar(ns_run.avatar)
    subject = load_subject(ns_run.subject)
    cameras = pipeline.datamanager.eval_dataset.cameras
    index = int(cameras.metadata["frame_index"][0])
    ours = render_subject_frame(avatar, subject, index, pipeline.model.background.cpu()).rgb
    theirs = pipeline.model.get_outputs_for_camera(cameras[0:1])["rgb"].cpu()
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_ns_eval_writes_metrics(ns_run, tmp_path):
    out = tmp_path / "eval.json"
    run = subprocess.run([ns_script("ns-eval"), "--load-config", str(ns_run.config), "--output-path", str(out)], cwd=ns_run.root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert results["psnr"] > 5 and 0 <= results["lpips"] <= 1


def test_front_view_faces_the_head(ns_run):
    subject = load_subject(ns_run.subject)
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


class FakeCamera:
    """viser's CameraHandle as far as FaceTheHead uses it (attribute writes)."""


class FakeClient:
    def __init__(self):
        self.camera = FakeCamera()
        self.writes = []

    def atomic(self):
        import contextlib

        return contextlib.nullcontext()


class FakeServer:
    def __init__(self):
        self.up, self.connect = None, []
        self.scene = self

    def set_up_direction(self, up):
        self.up = up

    def on_client_connect(self, cb):
        self.connect.append(cb)


def test_the_viewer_finds_the_control_and_it_turns_each_client_to_the_face(loaded):
    from nerfstudio.viewer.utils import parse_object
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO as scale
    from nerfstudio.viewer.viewer_elements import ViewerControl

    _, pipeline, _, _ = loaded
    controls = [c for _, c in parse_object(pipeline, ViewerControl, "Custom Elements")]  # what nerfstudio's Viewer sets up
    face = [c for c in controls if isinstance(c, FaceTheHead)]
    assert len(face) == 1
    control = FaceTheHead(HeadView(position=(0.0, 0.1, 1.0), look_at=(0.0, 0.1, 0.0), up=(0.0, 1.0, 0.0), fov=0.3))
    viewer, server = type("Viewer", (), {})(), FakeServer()
    viewer.viser_server = server
    control._setup(viewer)
    assert server.up == (0.0, 1.0, 0.0) and server.connect == [control.face_the_head]
    client = FakeClient()
    server.connect[0](client)
    assert client.camera.position == pytest.approx((0.0, 0.1 * scale, 1.0 * scale))
    assert client.camera.look_at == pytest.approx((0.0, 0.1 * scale, 0.0))
    assert client.camera.up_direction == (0.0, 1.0, 0.0) and client.camera.fov == 0.3


def test_ns_export_gaussian_splat_stops_before_loading_and_names_eavatar_export(ns_run, tmp_path):
    out = tmp_path / "exports"
    run = subprocess.run([ns_script("ns-export"), "gaussian-splat", "--load-config", str(ns_run.config), "--output-dir", str(out)], cwd=ns_run.root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert f"eavatar export --avatar {ns_run.avatar} --out {out / 'splat.ply'}" in run.stderr
    assert "Traceback" not in run.stderr and "Loading latest checkpoint" not in run.stdout  # a message, before loading anything
    assert not (out / "splat.ply").exists()


def test_ns_render_camera_path_stops_before_loading_and_names_eavatar_render(ns_run, tmp_path):
    from nerfstudio.scripts.render import RenderCameraPath

    tool = RenderCameraPath(load_config=ns_run.config, camera_path_filename=tmp_path / "camera_path.json", output_path=tmp_path / "renders" / "path.mp4")
    with pytest.raises(UnsupportedTool) as err:
        tool.main()
    message = str(err.value)
    assert "no expression track" in message
    assert f"eavatar render --avatar {ns_run.avatar} --data {ns_run.subject} --out {tmp_path / 'renders'}" in message
    assert err.value.code == message  # SystemExit: printed to stderr, exit status 1


def test_only_the_unsupported_tools_are_refused(ns_run):
    from nerfstudio.scripts.exporter import ExportCameraPoses, ExportGaussianSplat

    def called_by(tool):
        self = tool  # noqa: F841 - what unsupported_tool looks for on the stack, as in the tool's main()
        return unsupported_tool()

    assert called_by(ExportGaussianSplat(load_config=ns_run.config, output_dir=ns_run.root)) is not None
    assert called_by(ExportCameraPoses(load_config=ns_run.config, output_dir=ns_run.root)) is None
    assert unsupported_tool() is None
