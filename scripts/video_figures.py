"""The figures and the results table of docs/video.md from the video pipeline's outputs (run after `dvc repro video/dvc.yaml`).

    python scripts/video_figures.py                 # every clip of params.yaml `videos`
    python scripts/video_figures.py --names d3 d10

docs/images/video_masks.png: per clip, three training frames, each as the crop with the mask's
outline in red | the region map over it | composited over white (what training sees).
docs/images/video_results.png: per clip, the first, middle and last of the evaluation's test
samples (ground truth | render at the tracked pose, protocol (a) | at the fitted pose, (b)).
docs/images/video_refinement.png: per clip trained with tracking refinement, the head pose
correction it learnt for each training frame over time (eavatar.ui.refinement_view).
Printed: the results table (markdown) from metrics/video/<name>_{prepare,eval}.json, the
training frames' scores (metrics/video/<name>_train_frames.json, where written: `eavatar
evaluate` of the train split) and the training wall time of the latest MLflow run
`train-video-<name>`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from eavatar.data.frames import read_ground_truth, to_uint8

REGION_COLOURS = np.array([[0, 0, 0], [240, 190, 160], [220, 30, 30], [40, 60, 230], [30, 170, 30], [120, 80, 40]], np.uint8)
GAP = 6  # px of black between panels


def mask_panels(subject: Path, frame: dict) -> np.ndarray:
    rgb = iio.imread(subject / frame["file_path"])[..., :3].copy()
    mask = iio.imread(subject / frame["fg_mask_path"])
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outlined = cv2.drawContours(rgb.copy(), contours, -1, (255, 0, 0), 1)
    regions = iio.imread(subject / frame["region_path"])
    overlay = np.where(regions[..., None] > 0, 0.45 * rgb + 0.55 * REGION_COLOURS[regions], rgb).astype(np.uint8)
    composite = to_uint8(read_ground_truth(subject / frame["file_path"], None, subject / frame["fg_mask_path"]))
    return hstack([outlined, overlay, composite], gap=2)


def hstack(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    h = images[0].shape[0]
    out = [images[0]]
    for image in images[1:]:
        out += [np.zeros((h, gap, 3), np.uint8), image]
    return np.concatenate(out, axis=1)


def vstack(rows: list[np.ndarray]) -> np.ndarray:
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows]
    out = [rows[0]]
    for row in rows[1:]:
        out += [np.zeros((GAP, w, 3), np.uint8), row]
    return np.concatenate(out, axis=0)


def training_minutes(name: str) -> float | None:
    """Wall time of the latest finished MLflow run ``train-video-<name>`` (the store of MLFLOW_TRACKING_URI or ./mlflow.db)."""
    from eavatar.tracking.mlflow_run import tracking_uri

    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.runName = 'train-video-{name}' and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"], max_results=1)
    if runs.empty:
        return None
    return (runs["end_time"].iloc[0] - runs["start_time"].iloc[0]).total_seconds() / 60


def table_row(name: str) -> str:
    ev = json.loads(Path(f"metrics/video/{name}_eval.json").read_text())
    prep = json.loads(Path(f"metrics/video/{name}_prepare.json").read_text())
    report = json.loads((Path("data/video") / name / "prepare_report.json").read_text())
    meta = json.loads((Path("data/video") / name / "transforms.json").read_text())
    train_path = Path(f"metrics/video/{name}_train_frames.json")
    fit = json.loads(train_path.read_text()) if train_path.is_file() else {}
    dropped = len(report["dropped_no_face"]) + len(report["dropped_bad_mask"])
    n_train, n_test = (len(meta["splits"][s]["frames"]) for s in ("train", "test"))
    b = ev.get("fitted_pose") or {}
    minutes = training_minutes(name)

    def f(v, digits=2):
        return "n/a" if v is None else f"{v:.{digits}f}"

    return (
        f"| {name} | {n_train} / {n_test} ({dropped} dropped) | {f(ev['psnr'])} / {f(b.get('psnr'))} | {f(ev['ssim'], 3)} / {f(b.get('ssim'), 3)} "
        f"| {f(ev['mouth_psnr'])} / {f(b.get('mouth_psnr'))} | {f(ev['eyes_psnr'])} / {f(b.get('eyes_psnr'))} "
        f"| {f(ev.get('aed_vs_neutral'))} / {f(b.get('aed_vs_neutral'))} | {f(ev.get('contour_error_share'))} / {f(b.get('contour_error_share'))} "
        f"| {f(b.get('fit_rotation_deg'))} | {f(fit.get('psnr'))} / {f(fit.get('mouth_psnr'))} | {prep['seconds']:.0f} | {f(minutes, 1)} |"
    )


TABLE_HEADER = (
    "| clip | train / test frames | PSNR (a) / (b) | SSIM (a) / (b) | mouth PSNR (a) / (b) | eyes PSNR (a) / (b) | AED ratio (a) / (b) | error share at the outline (a) / (b) "
    "| fitted pose correction (median deg) | training frames: PSNR / mouth | prepare s | training min |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def refinement_panel(name: str) -> np.ndarray | None:
    """The pose correction refinement learnt per training frame of clip ``name`` (None: trained without)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eavatar.avatar.checkpoint import load_refinement
    from eavatar.ui.refinement_view import refinement_curves

    avatar = Path("artifacts/video") / name / "train" / "avatar.pt"
    if not avatar.is_file() or load_refinement(avatar) is None:
        return None
    c = refinement_curves(avatar, Path("data/video") / name)
    fig, ax = plt.subplots(figsize=(8, 1.8), dpi=100)
    ax.plot(c["timestep"], c["rotation_deg"], label="rotation (deg)")
    ax.plot(c["timestep"], 100 * c["shift"], label="shift (% head radius)")
    ax.set_title(f"{name}: head pose correction per training frame", fontsize=9)
    ax.set_xlabel("frame", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", help="clips of params.yaml `videos` (default: all)")
    p.add_argument("--out", type=Path, default=Path("docs/images"))
    args = p.parse_args()
    if not args.names:
        from eavatar.config import load_params

        args.names = list(load_params("params.yaml", "videos"))
    mask_rows, result_rows = [], []
    for name in args.names:
        subject = Path("data/video") / name
        meta = json.loads((subject / "transforms.json").read_text())
        train = meta["splits"]["train"]["frames"]
        picks = [meta["frames"][train[k]] for k in np.linspace(0, len(train) - 1, 3).round().astype(int)]
        mask_rows.append(hstack([mask_panels(subject, f) for f in picks]))
        samples = sorted((Path("artifacts/video") / name / "eval").glob("sample_*.png"))
        if not samples:
            raise SystemExit(f"artifacts/video/{name}/eval: no sample_*.png; run `dvc repro video/dvc.yaml` first")
        chosen = [samples[0], samples[len(samples) // 2], samples[-1]]
        result_rows.append(hstack([iio.imread(s)[..., :3] for s in chosen]))
    args.out.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out / "video_masks.png", vstack(mask_rows))
    iio.imwrite(args.out / "video_results.png", vstack(result_rows))
    print(f"wrote {args.out / 'video_masks.png'} and {args.out / 'video_results.png'}")
    panels = [panel for name in args.names if (panel := refinement_panel(name)) is not None]
    if panels:
        iio.imwrite(args.out / "video_refinement.png", vstack(panels))
        print(f"wrote {args.out / 'video_refinement.png'}")
    print(TABLE_HEADER)
    for name in args.names:
        print(table_row(name))


if __name__ == "__main__":
    main()
