"""Render videos and PLYs: a test sequence (ground truth | render) and a novel-view orbit at a chosen expression."""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from eavatar.cli.params import load_params


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--section", default="render", help="its section with the render settings (video/dvc.yaml: render_video)")
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/render"), help="folder for videos and PLYs")


def expression_from_names(values: dict[str, float], labels: list[str], where: str) -> torch.Tensor:
    """A code from {label: value}; unknown labels are errors that list the known ones."""
    code = torch.zeros(len(labels))
    for name, v in values.items():
        if name not in labels:
            raise SystemExit(f"{where}: unknown expression '{name}' (known: {', '.join(labels)})")
        code[labels.index(name)] = float(v)
    return code


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), plugin="pyav", fps=fps, codec="libx264")
    return path


@torch.no_grad()
def render_orbit(avatar, subject, info, expression: torch.Tensor, n_frames: int, elevation_deg: float) -> list[np.ndarray]:
    """A full turn around the head at the reference pose, at the training cameras' distance."""
    from eavatar.drive import orbit_camera, to_uint8

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
    from eavatar.drive import load_rgb, render_subject_frame

    background = torch.tensor(info.background, device=avatar.center.device)
    idx = [i for i in subject.frames_of_sequence(sequence) if subject.camera_indices[i] == camera]
    idx.sort(key=lambda i: subject.timesteps[i])
    frames = []
    for i in idx:
        pred = render_subject_frame(avatar, subject, int(i), background).rgb.cpu()
        gt = load_rgb(subject.image_paths[i], background.cpu())
        frames.append((torch.cat([gt, pred], dim=1).clamp(0, 1) * 255).round().byte().numpy())
    return frames


def run(args: argparse.Namespace) -> int:
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.ply import export_canonical_ply, export_frame_ply
    from eavatar.data.subject import load_subject
    from eavatar.tracking.mlflow_run import TrackedRun

    params = load_params(args.params, args.section)
    where = f"{args.params}:{args.section}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    avatar, info = load_avatar(args.avatar, device)
    subject = load_subject(args.data)
    test = subject.split(params.get("split", "test"))
    sequence = params.get("sequence") or subject.sequences[test[0]]
    frontal = test[np.argmax(subject.c2w[test, 2, 3])]  # default: the camera most in front of the face (+z)
    camera = int(params.get("camera", subject.camera_indices[frontal]))
    fps = int(params.get("fps", 25))
    expression = expression_from_names(params.get("orbit_expression") or {}, info.expression_labels, f"{where}.orbit_expression")
    outputs = [
        write_video(args.out / "test_sequence.mp4", render_test_sequence(avatar, subject, info, sequence, camera), fps),
        write_video(
            args.out / "orbit.mp4",
            render_orbit(avatar, subject, info, expression, int(params.get("orbit_frames", 48)), float(params.get("orbit_elevation", 10.0))),
            fps,
        ),
        export_canonical_ply(args.out / "canonical.ply", avatar),
        export_frame_ply(
            args.out / "orbit_expression.ply",
            avatar,
            expression.to(device),
            torch.tensor(info.reference_head_pose, dtype=torch.float32, device=device),
        ),
    ]
    with TrackedRun(run_name="render", tags={"stage": "render", "avatar": str(args.avatar)}) as run:
        run.log_params({"sequence": sequence, "camera": camera, "orbit_expression": params.get("orbit_expression")})
        run.log_artifacts(outputs, artifact_path="renders")
    for p in outputs:
        print(f"wrote {p}")
    return 0
