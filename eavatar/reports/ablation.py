"""The ablation's tables, docs page and figures, made from the rows and files of its runs.

The runs are DVC experiments (eavatar/pipeline/ablation.py trains one; eavatar/pipeline/
ablation_sweep.py queues them and reads them back); nothing here reads a run's folder, so the
page is rebuilt from finished experiments, and editing it never invalidates a run (the run
stage does not import this module).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns of the table, in order: key in the per-run rows, header, digits, better direction.
COLUMNS = [
    ("psnr", "PSNR (dB)", 2, "higher"),
    ("ssim", "SSIM", 4, "higher"),
    ("lpips", "LPIPS", 4, "lower"),
    ("mouth_psnr", "mouth PSNR", 2, "higher"),
    ("eyes_psnr", "eyes PSNR", 2, "higher"),
    ("flicker", "flicker (8-bit)", 3, "lower"),
    ("num_gaussians", "Gaussians", 0, None),
]

#: Training-PSNR logs (one every 25 steps) averaged in the curves: single frames are noisy.
PSNR_WINDOW = 8


def summarise(rows: list[dict], variants: list[str]) -> list[dict]:
    """Per variant: n, and mean and sample standard deviation (ddof=1) of every column over seeds."""
    out = []
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        entry: dict[str, Any] = {"variant": variant, "n": len(mine)}
        for key, *_ in COLUMNS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if len(values) == len(mine) and values:
                entry[f"{key}_mean"] = float(np.mean(values))
                entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            else:
                entry[f"{key}_mean"] = entry[f"{key}_std"] = None
        out.append(entry)
    return out


def markdown_table(summary: list[dict]) -> str:
    """Mean ± standard deviation over seeds; the best mean of each quality column in bold."""
    header = "| variant | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    best = {}
    for key, _, _, better in COLUMNS:
        means = [s[f"{key}_mean"] for s in summary if s[f"{key}_mean"] is not None]
        if better and means:
            best[key] = max(means) if better == "higher" else min(means)
    for s in summary:
        cells = []
        for key, _, digits, _ in COLUMNS:
            mean, std = s[f"{key}_mean"], s[f"{key}_std"]
            if mean is None:
                cells.append("n/a")
                continue
            text = f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(f"**{text}**" if best.get(key) == mean and len(summary) > 1 else text)
        lines.append(f"| {s['variant']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_deltas(rows: list[dict], variant: str, reference: str, key: str) -> tuple[float, float, int] | None:
    """Mean and sample std over seeds of (variant - reference) for ``key``, paired by seed."""
    ref = {r["seed"]: r.get(key) for r in rows if r["variant"] == reference}
    deltas = [r[key] - ref[r["seed"]] for r in rows if r["variant"] == variant and r.get(key) is not None and ref.get(r["seed"]) is not None]
    if not deltas:
        return None
    return float(np.mean(deltas)), float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0, len(deltas)


def delta_lines(rows: list[dict], variants: list[str]) -> list[str]:
    """One line per variant: its paired difference to the baseline (the first variant) per quality metric."""
    reference, lines = variants[0], []
    for variant in variants[1:]:
        parts = []
        for key, header, digits, better in COLUMNS:
            d = paired_deltas(rows, variant, reference, key) if better else None
            if d is not None:
                parts.append(f"{header} {d[0]:+.{digits + 1}f} ± {d[1]:.{digits + 1}f}")
        lines.append(f"- **{variant}** − {reference} (paired by seed): " + "; ".join(parts))
    return lines


def write_report(path: Path, table: str, protocol: dict, rows: list[dict], figures: list[Path]) -> None:
    """docs/ablation.md: protocol, table, paired differences, figures, and the experiments it was made from."""
    variants = list(protocol["variants"])
    pending = "" if "full" in variants else '\nThe "full (+prior)" row is not measured here.\n'
    fig_links = "\n".join(f"![{f.stem}]({Path('images') / f.name})" for f in figures)
    experiments = "\n".join(f"| {r['variant']} | {r['seed']} | `{r.get('experiment', '')}` | `{str(r.get('rev', ''))[:7]}` |" for r in rows)
    text = f"""# Ablation: sparse expression control, deformation-aware splitting, geometry prior

Made by `make ablation`: `eavatar ablation queue` runs each variant at each seed as a DVC
experiment of the `run` stage of ablation/dvc.yaml (`dvc exp run --queue -S ablation.variant=V
-S ablation.seed=K ablation/dvc.yaml`, then `dvc queue start`), and `eavatar ablation report`
wrote this page from the finished experiments whose command, code, data and params are those of
the workspace (`dvc exp show` lists them; the last table names each). DVC's run cache replays
a run made before, so only the runs whose code, data or params changed train again.
Protocol: subject `{protocol['subject']}`, evaluated on its `{protocol['split']}` split (held-out
expression sequences), {protocol['max_steps']} training steps per run, seeds {protocol['seeds']};
variants are overrides of params.yaml `train` (params.yaml `ablation.variants`; a run's full
training parameters are in its experiment's `artifacts/ablation/run/params.yaml`, which the report
copies with the avatar to `artifacts/ablation/<variant>/seed<k>/`). Mean ± sample standard deviation over seeds. Region PSNR is measured inside the
ground-truth mouth and eye masks; flicker is the mean |(R_t - R_t-1) - (G_t - G_t-1)| over
consecutive test timesteps, in 8-bit levels (eavatar/metrics/temporal.py). Gaussians: the count
at the end of training. The time and memory each component costs per step is measured apart, on
one machine state, in docs/benchmarks.md ("Sparse control and splitting"). A variant with
`model.init_mesh` seeds its Gaussians from that mesh (`full`: the Stage I mesh of `dvc repro
geometry`, docs/geometry.md) instead of the subject's template; the mesh is a dep of the run
stage. The training-PSNR curve is the PSNR of each step's training frame, a running mean over
seeds and logs.

{table}
{pending}
Differences to the baseline, per seed then averaged (positive PSNR/SSIM and negative
LPIPS/flicker are better):

{chr(10).join(delta_lines(rows, variants))}

{fig_links}

| variant | seed | experiment | commit |
|---|---|---|---|
{experiments}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def figures(crops: dict[str, Any], histories: dict[tuple[str, int], pd.DataFrame], variants: list[str], seeds: list[int], folder: Path) -> list[Path]:
    """The mouth and eye crops of each variant (first seed) and the training curves."""
    folder.mkdir(parents=True, exist_ok=True)
    return [crops_figure(crops, variants, folder / "ablation_crops.png"), training_curves(histories, variants, seeds, folder / "ablation_training.png")]


#: The PNG text key of a run's crops image (eavatar.pipeline.ablation.write_crops; a test holds them equal).
CROPS_KEY = "eavatar-crops"


def load_crops(source) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(labels, ground-truth crops, render crops) of a run's ``crops.png`` (a path, file
    object or bytes): rows of ground truth | render cells, labels and cell size in a text chunk."""
    from PIL import Image

    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    with Image.open(source) as image:
        meta = json.loads(image.text[CROPS_KEY])
        grid = np.asarray(image.convert("RGB"))
    (h, w), labels = meta["cell"], meta["labels"]
    truth = [grid[k * h : (k + 1) * h, :w] for k in range(len(labels))]
    renders = [grid[k * h : (k + 1) * h, w : 2 * w] for k in range(len(labels))]
    return labels, truth, renders


def crops_figure(crops: dict[str, Any], variants: list[str], path: Path) -> Path:
    """Rows: test frames (mouth, then eyes); columns: ground truth, then each variant, cropped
    around the region. ``crops``: variant -> :func:`load_crops` of one of its runs (the same frames for all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, truth, _ = crops[variants[0]]
    fig, axes = plt.subplots(len(labels), len(variants) + 1, figsize=(2.2 * (len(variants) + 1), 2.2 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        images = [truth[r], *(crops[v][2][r] for v in variants)]
        for c, (title, img) in enumerate(zip(["ground truth", *variants], images)):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(histories: dict[tuple[str, int], pd.DataFrame], variants: list[str], seeds: list[int], path: Path) -> Path:
    """Training PSNR (running mean), control-set size and number of Gaussians against step, mean over seeds.
    ``histories``: (variant, seed) -> the run's history table (eavatar.tracking.history)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for v in variants:
        runs = [histories[(v, s)] for s in seeds]
        n = min(len(h) for h in runs)
        step = runs[0]["step"].to_numpy()[:n]
        psnr = np.mean([h["train/psnr"].to_numpy()[:n] for h in runs], axis=0)
        window = min(PSNR_WINDOW, n)
        axes[0].plot(step[window - 1 :], np.convolve(psnr, np.ones(window) / window, mode="valid"), label=v)
        for ax, key in zip(axes[1:], ("train/num_control", "train/num_gaussians")):
            if all(key in h for h in runs):
                ax.plot(step, np.mean([h[key].to_numpy()[:n] for h in runs], axis=0), label=v)
    axes[0].set(title=f"PSNR of the training frame (running mean of {PSNR_WINDOW} logs)", xlabel="step", ylabel="dB")
    axes[1].set(title="control Gaussians per training frame", xlabel="step", ylabel="count")
    axes[2].set(title="Gaussians", xlabel="step", ylabel="count")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
