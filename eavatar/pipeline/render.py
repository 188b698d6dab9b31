"""The render stage: a test sequence (ground truth | render) and a novel-view orbit as videos, and PLYs."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from eavatar.config import load_params


def expression_from_names(values: dict[str, float], labels: list[str], where: str) -> torch.Tensor:
    """A code [d_exp] from {label: value}; an unknown label is an error that lists the known ones."""
    code = torch.zeros(len(labels))
    for name, v in values.items():
        if name not in labels:
            raise SystemExit(f"{where}: unknown expression '{name}' (known: {', '.join(labels)})")
        code[labels.index(name)] = float(v)
    return code


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """H.264 MP4 of uint8 [H, W, 3] frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), plugin="pyav", fps=fps, codec="libx264")
    return path


@torch.no_grad()
def render_orbit(avatar, subject, info, expression: torch.Tensor, n_frames: int, elevation_deg: float) -> list[np.ndarray]:
    """A full turn around the head at the reference pose, at the training cameras' distance."""
    from eavatar.avatar.drive import orbit_camera
    from eavatar.data.frames import to_uint8

    device = avatar.center.device
    head_pose = torch.tensor(info.reference_head_pose, dtype=torch.float32, device=device)
    background = torch.tensor(info.background, device=device)
    return [
        to_uint8(avatar.render(orbit_camera(avatar, subject, head_pose, 360.0 * k / n_frames, elevation_deg), expression.to(device), head_pose, background).rgb)
        for k in range(n_frames)
    ]


@torch.no_grad()
def render_test_sequence(avatar, subject, info, sequence: str, camera: int) -> list[np.ndarray]:
    """Ground truth | render for every frame of ``sequence`` seen by ``camera``."""
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import load_ground_truth, to_uint8

    background = torch.tensor(info.background, device=avatar.center.device)
    frames = []
    for i in subject.frames_of_sequence(sequence, camera):
        pred = render_subject_frame(avatar, subject, int(i), background).rgb
        frames.append(to_uint8(torch.cat([load_ground_truth(subject, int(i), background), pred], dim=1)))
    return frames


def render_stage(params_file: Path, section: str, avatar_path: Path, data: Path, out: Path) -> list[Path]:
    """``eavatar render``: the videos and PLYs of params ``section`` under ``out``, logged to MLflow; returns the files."""
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.ply import export_canonical_ply, export_frame_ply
    from eavatar.data.subject import load_subject
    from eavatar.render.device import default_device
    from eavatar.tracking.mlflow_run import TrackedRun

    params = load_params(params_file, section)
    where = f"{params_file}:{section}"
    device = default_device()
    avatar, info = load_avatar(avatar_path, device)
    subject = load_subject(data)
    test = subject.split(params.get("split", "test"))
    sequence = params.get("sequence") or subject.sequences[test[0]]
    frontal = test[np.argmax(subject.c2w[test, 2, 3])]  # default: the camera most in front of the face (+z)
    camera = int(params.get("camera", subject.camera_indices[frontal]))
    fps = int(params.get("fps", 25))
    expression = expression_from_names(params.get("orbit_expression") or {}, info.expression_labels, f"{where}.orbit_expression")
    orbit = render_orbit(avatar, subject, info, expression, int(params.get("orbit_frames", 48)), float(params.get("orbit_elevation", 10.0)))
    reference_pose = torch.tensor(info.reference_head_pose, dtype=torch.float32, device=device)
    outputs = [
        write_video(out / "test_sequence.mp4", render_test_sequence(avatar, subject, info, sequence, camera), fps),
        write_video(out / "orbit.mp4", orbit, fps),
        export_canonical_ply(out / "canonical.ply", avatar),
        export_frame_ply(out / "orbit_expression.ply", avatar, expression.to(device), reference_pose),
    ]
    with TrackedRun(run_name="render", tags={"stage": "render", "avatar": str(avatar_path)}) as run:
        run.log_params({"sequence": sequence, "camera": camera, "orbit_expression": params.get("orbit_expression")})
        run.log_artifacts(outputs, artifact_path="renders")
    return outputs
