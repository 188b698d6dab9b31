"""One run of the ablation: a variant of params.yaml ``ablation`` at one seed, trained, evaluated, its mouth and eye crops.

This is the work of ablation/dvc.yaml's ``run`` stage (``eavatar ablation run``), which DVC runs
once per experiment: ``eavatar ablation queue`` queues one experiment per variant and seed
(``dvc exp run --queue -S ablation.variant=V -S ablation.seed=K``). The run's training
parameters are the train section with the variant's overrides, the seed and the shared budget
(:func:`run_params`); it writes

- ``<out>/avatar.pt``, ``<out>/params.yaml`` (the train section it used) and ``<out>/eval/``
  (per-frame tables, sample renders): DVC-cached outputs, ``dvc exp apply`` brings them back;
- the metrics (``metrics/ablation/run.json``: test-split PSNR / SSIM / LPIPS, region PSNR,
  flicker, Gaussians, training time), the training history (``history.csv``) and the crops
  (``crops.png``: ground truth | render around the mouth, then the eyes, at the report's test
  frames, an image ``dvc plots`` shows), kept in each experiment's commit (uncached metrics and
  plots keep DVC's run cache usable), where ``eavatar ablation report`` reads them.

Nothing here knows of DVC: the stage reruns when its deps (the import closure of this command,
the subject, the seed mesh, its params) change, and DVC's run cache replays a run already made.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eavatar.config import ConfigError, load_params

BUDGET = "max_num_iterations"  # the ablation section's key for the shared step budget
#: The regions cropped, how many test instants each shows, and the pixels of context around a region's box.
CROP_REGIONS = ("mouth", "eyes")
CROP_FRAMES = 4
CROP_PAD = 6


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with nested ``overrides`` applied key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def run_params(train: dict, ablation: dict, variant: str, seed: int) -> dict:
    """The train section of one run: the demo's, the variant's overrides, the seed and the shared budget."""
    overrides = ablation["variants"][variant] or {}
    return deep_merge(train, deep_merge(overrides, {"machine": {"seed": int(seed)}, BUDGET: int(ablation[BUDGET])}))


def run_settings(params_file: Path, variant: str | None = None, seed: int | None = None) -> tuple[str, int, dict]:
    """(variant, seed, train section) of one run: ``ablation.variant`` / ``ablation.seed`` unless given."""
    ablation = load_params(params_file, "ablation")
    where = f"{params_file}: ablation"
    for key in ("variants", BUDGET):
        if key not in ablation:
            raise ConfigError(f"{where}.{key}: missing")
    variant = ablation.get("variant") if variant is None else variant
    seed = ablation.get("seed") if seed is None else seed
    if variant not in ablation["variants"]:
        raise ConfigError(f"{where}.variant: {variant!r} is not one of ablation.variants ({', '.join(ablation['variants'])})")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{where}.seed: an integer, got {seed!r}")
    return variant, seed, run_params(load_params(params_file, "train"), ablation, variant, seed)


def scalars(summary: dict) -> dict:
    """The numbers of an evaluation summary (nested dicts kept), for a DVC metrics file."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            if inner := scalars(value):
                out[key] = inner
        elif isinstance(value, bool):
            continue
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = value
        elif value is None:
            out[key] = None
    return out


def run_variant(params_file: Path, data: Path, out: Path, metrics: Path, history: Path, crops: Path, variant: str | None = None, seed: int | None = None) -> dict:
    """``eavatar ablation run``: train, evaluate on the test split, crop mouth and eyes; returns the metrics.

    Training goes to ``<out>/train`` (nerfstudio's run: it resumes there when the stage runs
    again in the same workspace with the same config); ``<out>/avatar.pt`` is its result.
    """
    from eavatar.pipeline.evaluate import evaluate
    from eavatar.pipeline.train import check_inputs, train, training_config
    from eavatar.tracking.history import read_history

    variant, seed, params = run_settings(params_file, variant, seed)
    where = f"{params_file}: ablation.variants.{variant}"
    cfg = training_config(params, data, out / "train", where)
    cfg.mlflow_run_name = f"ablation/{variant}/seed{seed}"
    check_inputs(cfg, data, where)
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump({"variant": variant, "seed": seed, "train": params}, sort_keys=False))
    print(f"ablation run {variant} seed {seed}: training {params[BUDGET]} steps", flush=True)
    start = time.perf_counter()
    trained = train(cfg, data, out / "train", history)
    seconds = time.perf_counter() - start
    avatar = out / "avatar.pt"
    avatar.write_bytes(trained.read_bytes())
    summary = evaluate(avatar, data, "test", out / "eval")
    row = scalars(summary)
    row["num_gaussians"] = float(read_history(history)["train/num_gaussians"].dropna().iloc[-1])
    row["train_seconds"] = seconds  # wall time on a possibly shared machine: docs/benchmarks.md has the controlled cost
    row["step_seconds"] = seconds / max(int(params[BUDGET]), 1)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(row, indent=1))
    save_crops(avatar, data, crops)
    return row


def crop_frames(subject, region: str, count: int = CROP_FRAMES) -> list[int]:
    """Test frames of the most frontal camera that show ``region`` at work: for the mouth the
    largest mouth areas (open mouths), for the eyes the spread of the blink coefficients (open,
    half-closed, closed lids; evenly in time when the expression space has no blink)."""
    from eavatar.data.frames import load_region_map

    test = subject.split("test")
    offsets: dict[int, list[float]] = {}
    for i in test:
        offsets.setdefault(int(subject.camera_indices[i]), []).append(abs(float(subject.c2w[i, 0, 3])))
    frontal = min(offsets, key=lambda c: np.mean(offsets[c]))  # the camera nearest the x = 0 plane
    frames = [int(i) for i in test if subject.camera_indices[i] == frontal]
    if region == "mouth":
        area = {i: int((load_region_map(subject.region_paths[i]) == subject.region_labels["mouth"]).sum()) for i in frames}
        return sorted(sorted(frames, key=area.get, reverse=True)[: count * 3 : 3])  # open mouths, not all from one instant
    blink = [k for k, name in enumerate(subject.expression_labels) if "blink" in name.lower()]
    if not blink:
        return [frames[k] for k in np.linspace(0, len(frames) - 1, count).round().astype(int)]
    closure = {i: float(subject.expressions[i, blink].mean()) for i in frames}
    ranked = sorted(frames, key=closure.get)
    return sorted({ranked[k] for k in np.linspace(0, len(ranked) - 1, count).round().astype(int)})


def save_crops(avatar_path: Path, data: Path, path: Path) -> Path:
    """``path`` (PNG): per region of :data:`CROP_REGIONS` and frame of :func:`crop_frames` a row of
    ground truth | this avatar's render around the ground-truth region; the same frames and boxes
    for every run (:func:`write_crops`)."""
    import torch

    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import load_ground_truth, load_region_map, to_uint8
    from eavatar.data.subject import load_subject

    subject = load_subject(data)
    avatar, info = load_avatar(avatar_path, "cpu")
    background = torch.tensor(info.background)
    rows = []  # (label, frame, box)
    for region in CROP_REGIONS:
        for i in crop_frames(subject, region):
            ys, xs = np.nonzero((load_region_map(subject.region_paths[i]) == subject.region_labels[region]).numpy())
            if len(ys):
                box = (ys.min() - CROP_PAD, ys.max() + CROP_PAD + 1, xs.min() - CROP_PAD, xs.max() + CROP_PAD + 1)
                rows.append((f"{region} {subject.sequences[i]} t={int(subject.timesteps[i])}", i, box))
    height, width = max(b[1] - b[0] for _, _, b in rows), max(b[3] - b[2] for _, _, b in rows)  # one cell size: a regular grid
    truth, renders = [], []
    with torch.no_grad():
        for _, i, (y0, y1, x0, x1) in rows:
            w_img, h_img = (int(v) for v in subject.image_sizes[i])
            top = int(np.clip((y0 + y1 - height) // 2, 0, max(h_img - height, 0)))
            left = int(np.clip((x0 + x1 - width) // 2, 0, max(w_img - width, 0)))
            crop = (slice(top, top + height), slice(left, left + width))
            truth.append(to_uint8(load_ground_truth(subject, i, background)[crop]))
            renders.append(to_uint8(render_subject_frame(avatar, subject, i, background).rgb[crop]))
    return write_crops(path, [label for label, _, _ in rows], truth, renders)


#: PNG text key of a crops image: its row labels and cell size (read by eavatar.reports.ablation.load_crops).
CROPS_KEY = "eavatar-crops"


def write_crops(path: Path, labels: list[str], truth: list[np.ndarray], renders: list[np.ndarray]) -> Path:
    """A PNG with one row per frame, ground truth | render (equal-size uint8 HxWx3 cells), and the
    labels and cell size in a text chunk: an image ``dvc plots`` shows, and the report slices."""
    from PIL import Image, PngImagePlugin

    cells = [np.asarray(a, dtype=np.uint8) for a in (*truth, *renders)]
    if len({c.shape for c in cells}) != 1:
        raise ValueError(f"crops of different sizes: {sorted({c.shape for c in cells})}")
    grid = np.concatenate([np.concatenate([t, r], axis=1) for t, r in zip(cells[: len(labels)], cells[len(labels) :])], axis=0)
    info = PngImagePlugin.PngInfo()
    info.add_text(CROPS_KEY, json.dumps({"labels": list(labels), "cell": list(cells[0].shape[:2])}))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG", pnginfo=info)
    return path
