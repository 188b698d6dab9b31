"""An ``ns-train eavatar`` run through nerfstudio's own loading: torch's weights-only load,
``eval_setup`` (ns-viewer, ns-eval, ns-render) and ``ns-eval``."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from eavatar.avatar.checkpoint import load_avatar
from eavatar.avatar.drive import render_subject_frame
from eavatar.data.subject import load_subject
from eavatar.ns.viewer import FaceTheHead
from tests.ns.conftest import ns_script

pytestmark = pytest.mark.slow  # trains the run (about 25 s on 2 shared cores) and runs ns-eval


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


def test_the_run_seeded_a_lid_layer_over_the_eyes(ns_run, loaded):
    """ns-train seeds the template's points plus one lid Gaussian per eye point (no densification in 12 steps)."""
    from eavatar.avatar.gaussians import load_mesh, sample_mesh_points
    from eavatar.avatar.lid_layer import eye_points, surface_normals

    _, pipeline, _, _ = loaded
    subject = load_subject(ns_run.subject)
    mesh = load_mesh(subject.template_mesh)
    points = sample_mesh_points(mesh, 800, seed=0).astype(np.float64)  # TINY_TRAIN_FLAGS: 800 points, seed 0
    lids = int(eye_points(points, surface_normals(mesh, points), subject).sum())
    assert lids > 0
    assert len(pipeline.model.avatar.canonical) == 800 + lids


def test_the_viewer_finds_the_front_view_control_in_the_loaded_pipeline(loaded):
    from nerfstudio.viewer.utils import parse_object
    from nerfstudio.viewer.viewer_elements import ViewerControl

    _, pipeline, _, _ = loaded
    controls = [c for _, c in parse_object(pipeline, ViewerControl, "Custom Elements")]  # what nerfstudio's Viewer sets up
    assert [type(c) for c in controls].count(FaceTheHead) == 1


def test_ns_eval_writes_metrics(ns_run, tmp_path):
    out = tmp_path / "eval.json"
    run = subprocess.run([ns_script("ns-eval"), "--load-config", str(ns_run.config), "--output-path", str(out)], cwd=ns_run.root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert results["psnr"] > 5 and 0 <= results["lpips"] <= 1
