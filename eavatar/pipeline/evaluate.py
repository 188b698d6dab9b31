"""The evaluate stage: image, region, geometric and re-tracking metrics of an avatar on every split.

Per split (docs/metrics.md): PSNR / SSIM / LPIPS of each frame, whole and per face region
(mouth, eyes, brows, skin) from the ground-truth region maps; temporal flicker; for subjects
with ground-truth meshes, the geometric error of the posed Gaussians per region; for
``arkit52`` subjects (videos), the expression accuracy by re-tracking (AED / AKD-like), also of
the avatar at the neutral code. Each frame's distance to the nearest training expression code,
and the averages over the frames inside the training range (``in_range``, metrics/coverage.py).
Per-frame tables go to ``<out>/per_frame_<split>.csv`` (and ``geometry_<split>.csv``), the
averages to the metrics JSON: the headline split's flat at the top, every split under ``splits``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from eavatar.config import ConfigError, load_params
from eavatar.metrics.coverage import ExpressionCoverage

SAMPLE_RENDERS = 4  # side-by-side PNGs per split, kept for the docs and MLflow
IMAGE_KEYS = ("psnr", "ssim", "lpips")  # averaged only when every frame has one (never a partial LPIPS)


@dataclass
class EvalOptions:
    """params.yaml ``evaluate`` (docs/metrics.md)."""

    splits: list[str] | None = None  # None: every split of the subject but train
    headline: str = "test"  # the split whose averages sit flat at the top of the metrics JSON
    geometry_instants: int = 16  # per split: ground-truth meshes compared with the posed Gaussians (0: none)
    geometry_min_opacity: float = 0.5  # Gaussians at least this opaque are the avatar's surface
    retrack: str | bool = "auto"  # Face Landmarker re-tracking: "auto" (arkit52 subjects), true, false
    fit_pose: str | bool = "auto"  # protocol (b), each frame's head pose fitted with the avatar frozen: "auto" (monocular subjects), true, false
    fit_pose_steps: int = 20  # its Adam steps per frame (from the previous frame's fit in a sequence)
    fit_pose_lr: float = 2e-3  # its learning rate (radians; head radii)

    @classmethod
    def from_params(cls, params_file: Path) -> "EvalOptions":
        """The ``evaluate`` section; ``split: X`` (one split, also the headline) is still read."""
        section = dict(load_params(params_file, "evaluate"))
        where = f"{params_file}: evaluate"
        known = ("splits", "headline", "geometry_instants", "geometry_min_opacity", "retrack", "fit_pose", "fit_pose_steps", "fit_pose_lr")
        unknown = set(section) - {"split", *known}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (have {', '.join(known)})")
        if "split" in section:
            if "splits" in section or "headline" in section:
                raise ConfigError(f"{where}.split: give either split (one split) or splits + headline, not both")
            section["splits"] = section["headline"] = section.pop("split")
        splits = section.pop("splits", "all")
        if isinstance(splits, str):
            splits = None if splits == "all" else [splits]
        elif not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise ConfigError(f"{where}.splits: 'all' or a list of split names, got {splits!r}")
        for key in ("retrack", "fit_pose"):
            if section.get(key, "auto") not in ("auto", True, False):
                raise ConfigError(f"{where}.{key}: auto, true or false, got {section[key]!r}")
        for key, kind in (("geometry_instants", int), ("geometry_min_opacity", float), ("fit_pose_steps", int), ("fit_pose_lr", float)):
            if key in section:
                try:
                    section[key] = kind(section[key])
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}.{key}: expected a number, got {section[key]!r}") from None
        opts = cls(splits=splits, **section)
        if opts.splits is not None and opts.headline not in opts.splits:
            raise ConfigError(f"{where}.headline: {opts.headline!r} is not among evaluate.splits {opts.splits}")
        return opts


def evaluate(avatar_path: Path, data: Path, split: str, out: Path, options: EvalOptions | None = None) -> dict:
    """Averages of one split (what the ablation reads); its tables and samples under ``out``."""
    return evaluate_splits(avatar_path, data, [split], out, options)[split]


def evaluate_splits(avatar_path: Path, data: Path, splits: list[str] | None, out: Path, options: EvalOptions | None = None) -> dict[str, dict]:
    """Metrics of every frame of each split (None: every split but train) -> {split: averages}.

    The target is each frame's ground truth (its image through its mask over the avatar's
    background, eavatar.data.frames). Writes ``per_frame_<split>.csv``, ``geometry_<split>.csv``
    (subjects with meshes) and sample PNGs (ground truth | render) under ``out``.
    """
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.data.subject import load_subject
    from eavatar.render.device import default_device

    options = options or EvalOptions()
    device = default_device()
    avatar, info = load_avatar(avatar_path, device)
    subject = load_subject(data)
    names = [s for s in subject.splits if s != "train"] if splits is None else list(splits)
    if splits is None and options.headline not in names:
        raise ConfigError(f"{subject.transforms_path}: no split {options.headline!r} to head the metrics (have {', '.join(names) or 'none but train'}); set evaluate.headline")
    background = torch.tensor(info.background, device=device)
    out.mkdir(parents=True, exist_ok=True)
    coverage = ExpressionCoverage(subject)
    results = {}
    for split in names:
        print(f"evaluate: split {split}", file=sys.stderr, flush=True)
        results[split] = evaluate_split(avatar, subject, split, background, out, options, coverage)
    return results


def evaluate_split(avatar, subject, split: str, background: torch.Tensor, out: Path, options: EvalOptions, coverage: ExpressionCoverage) -> dict:
    """Averages of one split under protocol (a), the tracker's codes and poses, and where
    ``fit_pose`` says so (auto: monocular subjects) also under ``fitted_pose``, protocol (b): each
    frame's head pose fitted to it with the avatar frozen, its code untouched
    (eavatar.avatar.pose_fit). Writes per-frame CSVs and sample PNGs (ground truth | (a) | (b))."""
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.avatar.pose_fit import fit_head_pose, fitted_pose
    from eavatar.avatar.refinement import rotation_degrees
    from eavatar.data.frames import frame_camera, frame_controls, load_ground_truth, to_uint8

    indices = sorted(subject.split(split), key=lambda i: (subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i])))
    if not len(indices):
        from eavatar.data.subject import SubjectError

        raise SubjectError(f"{subject.transforms_path}: splits.{split}: no frames to evaluate")
    samples = {indices[k] for k in np.linspace(0, len(indices) - 1, SAMPLE_RENDERS).round().astype(int)}
    code_distances = dict(zip(indices, coverage.distances(subject.expressions[indices])))
    tracker, retrack_note = _face_tracker(subject, options)
    fit = options.fit_pose is True or (options.fit_pose == "auto" and len(subject.camera_ids()) == 1)
    tracked = SplitScorer(subject, coverage, code_distances, tracker)
    fitted = SplitScorer(subject, coverage, code_distances, tracker) if fit else None
    previous: tuple[str, int, int, torch.Tensor] | None = None  # (sequence, camera, timestep, residual): the next frame's start
    neutral = torch.zeros(avatar.d_exp)  # the code the re-tracking's reference render uses
    try:
        for i in (int(k) for k in indices):
            seq, cam, t = subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i])
            gt = load_ground_truth(subject, i, background)
            pred = render_subject_frame(avatar, subject, i, background).rgb
            tracked.add(i, pred, gt, lambda: render_subject_frame(avatar, subject, i, background, expression=neutral).rgb)
            if fitted is not None:
                expression, head_pose = frame_controls(subject, i, background.device)
                camera = frame_camera(subject, i, background.device)
                start = previous[3] if previous is not None and previous[:3] == (seq, cam, t - 1) else None
                residual = fit_head_pose(avatar, camera, expression, head_pose, gt, background, options.fit_pose_steps, options.fit_pose_lr, init=start)
                previous = (seq, cam, t, residual)
                with torch.no_grad():
                    pose = fitted_pose(avatar, head_pose, residual)
                    pred_b = avatar.render(camera, expression, pose, background).rgb
                row = fitted.add(i, pred_b, gt, lambda: avatar.render(camera, neutral.to(pose), pose, background).rgb)
                row.update(fit_rotation_deg=float(rotation_degrees(residual)), fit_translation=float(residual[3:].norm()))
            if i in samples:
                sheet = [gt, pred] + ([pred_b] if fitted is not None else [])
                iio.imwrite(out / f"sample_{split}_{i:05d}.png", to_uint8(torch.cat(sheet, dim=1)))
    finally:
        if tracker is not None:
            tracker.close()
    summary = {"split": split, "num_frames": len(indices), "resolution": [int(v) for v in subject.image_sizes[indices[0]]]}
    summary.update(tracked.summary(out / f"per_frame_{split}.csv"))
    if retrack_note:
        summary["retrack_unavailable"] = retrack_note
    geometry = _geometry(avatar, subject, split, out, options)
    if geometry is not None:
        summary["geometry"] = geometry
    if fitted is not None:
        summary["fitted_pose"] = fitted.summary(out / f"per_frame_{split}_fitted_pose.csv")
        rows = fitted.rows
        summary["fitted_pose"].update(
            fit_pose_steps=options.fit_pose_steps,
            fit_rotation_deg=float(np.median([r["fit_rotation_deg"] for r in rows])),
            fit_translation=float(np.median([r["fit_translation"] for r in rows])),
        )
    return summary


class SplitScorer:
    """The per-frame metrics of one split under one protocol, and their averages."""

    def __init__(self, subject, coverage: ExpressionCoverage, code_distances: dict, tracker):
        from eavatar.metrics.temporal import FlickerMeter

        self.subject, self.coverage, self.code_distances = subject, coverage, code_distances
        self.rows: list[dict] = []
        self.flicker = FlickerMeter()
        self.unavailable = None
        self.retrack = None
        if tracker is not None:
            from eavatar.metrics.retrack import RetrackMeter

            self.retrack = RetrackMeter(tracker)

    def add(self, i: int, pred: torch.Tensor, gt: torch.Tensor, neutral) -> dict:
        """Score frame ``i``'s render ``pred`` against ``gt``; ``neutral()`` renders the avatar at the
        neutral code (called only when re-tracking). Returns the frame's row."""
        from eavatar.data.frames import load_region_map, read_mask, to_uint8
        from eavatar.metrics.image import contour_errors, image_metrics
        from eavatar.metrics.regions import region_metrics

        subject = self.subject
        seq, cam, t = subject.sequences[i], int(subject.camera_indices[i]), int(subject.timesteps[i])
        pred, gt = counted_pixels(subject, i, pred, gt)
        self.flicker.add(seq, cam, t, pred, gt)
        row = {"frame": i, "sequence": seq, "camera": cam, "timestep": t, **image_metrics(pred, gt)}
        row.update(code_distance=float(self.code_distances[i]), in_range=self.coverage.in_range(self.code_distances[i]))
        self.unavailable = row.pop("lpips_unavailable", self.unavailable)
        if subject.mask_paths[i] is not None:
            (mask,) = counted_pixels(subject, i, read_mask(subject.mask_paths[i])[..., 0])
            row.update(contour_errors(pred, gt, mask))
        if subject.region_paths[i] is not None:
            (regions,) = counted_pixels(subject, i, load_region_map(subject.region_paths[i]))
            row.update(region_metrics(pred, gt, regions, subject.region_labels))
        if self.retrack is not None:
            (neutral_render,) = counted_pixels(subject, i, neutral())
            row.update(self.retrack.add(seq, cam, t, to_uint8(pred), to_uint8(gt), to_uint8(neutral_render)))
        self.rows.append(row)
        return row

    def summary(self, table: Path) -> dict:
        """Write the per-frame table; the averages (image, regions, flicker, outline, re-tracking, coverage)."""
        rows = sorted(self.rows, key=lambda r: r["frame"])
        write_csv(table, rows)
        summary = average_rows(rows)
        summary["flicker"] = self.flicker.mean()
        if all("sq_error" in r for r in rows):  # the share of the squared error within 2 px of the mask's outline
            total = sum(r["sq_error"] for r in rows)
            summary["contour_error_share"] = sum(r["sq_error_contour"] for r in rows) / total if total > 0 else None
        if self.retrack is not None:
            from eavatar.metrics.retrack import summarise_retrack

            summary.update(summarise_retrack(rows))
        summary.update(coverage_summary(rows, self.coverage, self.retrack is not None))
        if self.unavailable:
            summary["lpips_unavailable"] = self.unavailable
        return summary


def coverage_summary(rows: list[dict], coverage: ExpressionCoverage, retracked: bool) -> dict:
    """The split's distances to the training codes and, under ``in_range``, its averages over the
    frames no farther from training than training's own moments are (None without a threshold)."""
    distances = np.array([r["code_distance"] for r in rows])
    inside = [r for r in rows if r["in_range"]]
    out = {
        "code_distance_median": float(np.median(distances)),
        "code_distance_max": float(distances.max()),
        "in_range_threshold": coverage.threshold,
        "in_range_frames": len(inside) if coverage.threshold is not None else None,
        "in_range": None,
    }
    if inside:
        out["in_range"] = average_rows(inside)
        if retracked:
            from eavatar.metrics.retrack import summarise_retrack

            out["in_range"].update(summarise_retrack(inside))
    return out


def _face_tracker(subject, options: EvalOptions):
    """A FaceTracker (image mode) when this subject is re-tracked, else (None, why not when it should have been)."""
    if options.retrack is False or (options.retrack == "auto" and subject.expression_space != "arkit52"):
        return None, None
    from eavatar.data.face_tracker import FaceModelMissing, FaceTracker

    try:
        return FaceTracker(video=False), None
    except FaceModelMissing as err:
        if options.retrack is True:
            raise
        return None, str(err)


def _geometry(avatar, subject, split: str, out: Path, options: EvalOptions) -> dict | None:
    """Per-region geometric error on up to ``geometry_instants`` instants with ground-truth meshes; None without."""
    from eavatar.metrics.geometry import distinct_frames, region_geometry_metrics

    frames = distinct_frames(subject, split, options.geometry_instants) if options.geometry_instants > 0 else []
    if not frames:
        return None
    summary, rows = region_geometry_metrics(avatar, subject, frames, options.geometry_min_opacity)
    write_csv(out / f"geometry_{split}.csv", rows)
    return summary


def counted_pixels(subject, index: int, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``images`` ([H, W, ...]) cut to the frame's ``valid_box``: the pixels its camera saw (a
    source's padding, e.g. Gaussian Head Avatar's, would score a background render as perfect)."""
    box = subject.valid_boxes[index]
    if box is None:
        return images
    x0, y0, x1, y1 = box
    return tuple(image[y0:y1, x0:x1] for image in images)


def average_rows(rows: list[dict]) -> dict[str, float | int | None]:
    """Means of the per-frame image metrics: PSNR / SSIM / LPIPS only when every frame has one;
    a region's score over the frames where the region was visible, with their count
    (``{region}_frames``)."""
    from eavatar.metrics.regions import REGION_METRICS, SCORED_REGIONS

    summary: dict[str, float | int | None] = {}
    for key in IMAGE_KEYS:
        values = [r[key] for r in rows if r.get(key) is not None]
        summary[key] = float(np.mean(values)) if values and len(values) == len(rows) else None
    for region in SCORED_REGIONS:
        if not any(f"{region}_psnr" in r for r in rows):
            continue
        for metric in REGION_METRICS:
            values = [r[f"{region}_{metric}"] for r in rows if r.get(f"{region}_{metric}") is not None]
            summary[f"{region}_{metric}"] = float(np.mean(values)) if values else None
        summary[f"{region}_frames"] = sum(r.get(f"{region}_psnr") is not None for r in rows)
    return summary


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV, columns in order of first appearance; None is an empty cell (NaN in pandas)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)


def metrics_document(results: dict[str, dict], headline: str) -> dict:
    """The metrics JSON: the headline split's averages flat at the top, each split's under ``splits``."""
    if headline not in results:
        raise ConfigError(f"evaluate.headline: split {headline!r} was not evaluated (evaluated: {', '.join(results)})")
    return {"headline": headline, **results[headline], "splits": results}


def evaluate_stage(params_file: Path, avatar: Path, data: Path, out: Path, metrics: Path) -> dict:
    """``eavatar evaluate``: :func:`evaluate_splits` on params ``evaluate``, the metrics JSON, an MLflow run."""
    from eavatar.tracking.mlflow_run import TrackedRun, flatten

    options = EvalOptions.from_params(params_file)
    results = evaluate_splits(avatar, data, options.splits, out, options)
    document = metrics_document(results, options.headline)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(document, indent=2))
    with TrackedRun(run_name=f"evaluate-{options.headline}", tags={"stage": "evaluate", "avatar": str(avatar)}) as run:
        run.log_params({"splits": ",".join(results), "headline": options.headline, "avatar": str(avatar), "data": str(data)})
        flat = flatten(results)
        run.log_metrics({k.replace(".", "/", 1): v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)})
        run.log_artifacts([metrics, out], artifact_path="evaluation")
    return document
