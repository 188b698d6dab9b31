"""Evaluate an avatar on a subject split: PSNR, SSIM, LPIPS per frame and averaged, into JSON."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from eavatar.cli.params import load_params

SAMPLE_RENDERS = 4  # side-by-side PNGs kept for the docs and MLflow


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: evaluate)")
    p.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"), help="trained avatar")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/eval"), help="folder for per-frame metrics and samples")
    p.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"), help="averaged metrics JSON (dvc metrics)")


def evaluate(avatar_path: Path, data: Path, split: str, out: Path) -> dict:
    """Metrics of every frame of ``split``; writes per_frame.json and sample PNGs under ``out``.

    Besides PSNR / SSIM / LPIPS: PSNR inside the mouth and eye regions when the subject has
    region maps, and temporal flicker over consecutive timesteps (eavatar.metrics.temporal).
    """
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.data.subject import load_subject
    from eavatar.drive import load_rgb, render_subject_frame, to_uint8
    from eavatar.metrics.image import image_metrics
    from eavatar.metrics.regions import load_region_map, region_psnr
    from eavatar.metrics.temporal import FlickerMeter

    device = "cuda" if torch.cuda.is_available() else "cpu"
    avatar, info = load_avatar(avatar_path, device)
    subject = load_subject(data)
    background = torch.tensor(info.background, device=device)
    indices = sorted(subject.split(split), key=lambda i: (subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i])))
    samples = {indices[k] for k in np.linspace(0, len(indices) - 1, SAMPLE_RENDERS).round().astype(int)}
    out.mkdir(parents=True, exist_ok=True)
    rows, unavailable, flicker = [], None, FlickerMeter()
    for i in indices:
        pred = render_subject_frame(avatar, subject, int(i), background).rgb
        gt = load_rgb(subject.image_paths[i], background.cpu()).to(device)
        m = image_metrics(pred, gt)
        unavailable = m.pop("lpips_unavailable", unavailable)
        if subject.region_paths[i] is not None:
            m.update(region_psnr(pred, gt, load_region_map(subject.region_paths[i]), subject.region_labels))
        flicker.add(subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i]), pred, gt)
        rows.append({"frame": int(i), "sequence": subject.sequences[i], "camera": int(subject.camera_indices[i]), **m})
        if i in samples:
            iio.imwrite(out / f"sample_{int(i):05d}.png", to_uint8(torch.cat([gt, pred], dim=1)))
    rows.sort(key=lambda r: r["frame"])
    (out / "per_frame.json").write_text(json.dumps(rows, indent=1))
    summary = {"split": split, "num_frames": len(rows), "resolution": [int(v) for v in subject.image_sizes[indices[0]]]}
    summary.update(average_rows(rows))
    summary["flicker"] = flicker.mean()
    if unavailable:
        summary["lpips_unavailable"] = unavailable
    return summary


def average_rows(rows: list[dict]) -> dict[str, float | None]:
    """Means of the per-frame metrics: PSNR / SSIM / LPIPS only when every frame has one (never a
    partial LPIPS); a region score over the frames where the region was visible."""
    summary: dict[str, float | None] = {}
    for key in ("psnr", "ssim", "lpips"):
        values = [r[key] for r in rows if r.get(key) is not None]
        summary[key] = float(np.mean(values)) if values and len(values) == len(rows) else None
    for key in sorted({k for r in rows for k in r if k.endswith("_psnr")}):
        values = [r[key] for r in rows if r.get(key) is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary


def run(args: argparse.Namespace) -> int:
    from eavatar.tracking.mlflow_run import TrackedRun

    params = load_params(args.params, "evaluate")
    split = params.get("split", "test")
    summary = evaluate(args.avatar, args.data, split, args.out)
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(summary, indent=2))
    with TrackedRun(run_name=f"evaluate-{split}", tags={"stage": "evaluate", "avatar": str(args.avatar)}) as run:
        run.log_params({"split": split, "avatar": str(args.avatar), "data": str(args.data)})
        run.log_metrics({f"{split}/{k}": v for k, v in summary.items() if isinstance(v, float) and math.isfinite(v)})
        run.log_artifacts([args.metrics, args.out], artifact_path="evaluation")
    print(json.dumps(summary, indent=2))
    return 0
