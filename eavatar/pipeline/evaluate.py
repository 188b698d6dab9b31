"""The evaluate stage: PSNR, SSIM, LPIPS (and region PSNR, flicker) of an avatar on a subject split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from eavatar.config import load_params

SAMPLE_RENDERS = 4  # side-by-side PNGs kept for the docs and MLflow


def evaluate(avatar_path: Path, data: Path, split: str, out: Path) -> dict:
    """Metrics of every frame of ``split``; writes per_frame.json and sample PNGs under ``out``.

    The target is each frame's ground truth (its image through its mask over the avatar's
    background, eavatar.data.frames). Besides PSNR / SSIM / LPIPS: PSNR inside the mouth and eye
    regions when the subject has region maps, and temporal flicker over consecutive timesteps.
    """
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import load_ground_truth, to_uint8
    from eavatar.data.subject import load_subject
    from eavatar.metrics.image import image_metrics
    from eavatar.metrics.regions import load_region_map, region_psnr
    from eavatar.metrics.temporal import FlickerMeter
    from eavatar.render.device import default_device

    device = default_device()
    avatar, info = load_avatar(avatar_path, device)
    subject = load_subject(data)
    background = torch.tensor(info.background, device=device)
    indices = sorted(subject.split(split), key=lambda i: (subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i])))
    samples = {indices[k] for k in np.linspace(0, len(indices) - 1, SAMPLE_RENDERS).round().astype(int)}
    out.mkdir(parents=True, exist_ok=True)
    rows, unavailable, flicker = [], None, FlickerMeter()
    for i in indices:
        pred = render_subject_frame(avatar, subject, int(i), background).rgb
        gt = load_ground_truth(subject, int(i), background)
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


def evaluate_stage(params_file: Path, avatar: Path, data: Path, out: Path, metrics: Path) -> dict:
    """``eavatar evaluate``: :func:`evaluate` on params ``evaluate.split``, the averages into ``metrics``, an MLflow run."""
    from eavatar.tracking.mlflow_run import TrackedRun

    split = load_params(params_file, "evaluate").get("split", "test")
    summary = evaluate(avatar, data, split, out)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(summary, indent=2))
    with TrackedRun(run_name=f"evaluate-{split}", tags={"stage": "evaluate", "avatar": str(avatar)}) as run:
        run.log_params({"split": split, "avatar": str(avatar), "data": str(data)})
        run.log_metrics({f"{split}/{k}": v for k, v in summary.items() if isinstance(v, float) and math.isfinite(v)})
        run.log_artifacts([metrics, out], artifact_path="evaluation")
    return summary
