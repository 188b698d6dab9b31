"""The ablation's tables, docs page and figures, made from the runs `eavatar ablation` wrote.

Kept apart from the runner (eavatar/pipeline/ablation.py) so the page can be rebuilt from
finished runs, and so the numbers in the page are exactly the ones the command printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from eavatar.tracking.history import read_history

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

#: How many test instants the mouth figure shows.
MOUTH_FRAMES = 4
#: Pixels of context around the mouth's bounding box in the crops.
MOUTH_PAD = 6
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
    """docs/ablation.md: protocol, table, paired differences, figures."""
    variants = list(protocol["variants"])
    pending = "" if "full" in variants else '\nThe "full (+prior)" row is not measured here.\n'
    fig_links = "\n".join(f"![{f.stem}]({Path('images') / f.name})" for f in figures)
    text = f"""# Ablation: sparse expression control, deformation-aware splitting, geometry prior

Made by `eavatar ablation` (`make ablation`); every number below is what that command printed.
Protocol: subject `{protocol['subject']}`, evaluated on its `{protocol['split']}` split (held-out
expression sequences), {protocol['max_steps']} training steps per run, seeds {protocol['seeds']};
variants are overrides of params.yaml `train` (params.yaml `ablation.variants`; each run's full
training parameters are in `artifacts/ablation/<variant>/seed<k>/params.yaml`). Mean ± sample
standard deviation over seeds. Region PSNR is measured inside the ground-truth mouth and eye
masks; flicker is the mean |(R_t - R_t-1) - (G_t - G_t-1)| over consecutive test timesteps, in
8-bit levels (eavatar/metrics/temporal.py). Gaussians: the count at the end of training. The
time and memory each component costs per step is measured apart, on one machine state, in
docs/benchmarks.md ("Sparse control and splitting"). A variant with `model.init_mesh` seeds its
Gaussians from that mesh (`full`: the Stage I mesh of `dvc repro geometry`, docs/geometry.md)
instead of the subject's template; the run's key includes the mesh's hash. The training-PSNR
curve is the PSNR of each step's training frame, a running mean over seeds and logs.

{table}
{pending}
Differences to the baseline, per seed then averaged (positive PSNR/SSIM and negative
LPIPS/flicker are better):

{chr(10).join(delta_lines(rows, variants))}

{fig_links}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def figures(out: Path, data: Path, variants: list[str], seeds: list[int], folder: Path) -> list[Path]:
    """The mouth crops of each variant (first seed) and the training curves."""
    folder.mkdir(parents=True, exist_ok=True)
    return [mouth_figure(out, data, variants, seeds[0], folder / "ablation_mouth.png"), training_curves(out, variants, seeds, folder / "ablation_training.png")]


def mouth_frames(subject, count: int) -> list[int]:
    """Test frames of the most frontal camera with the largest mouth region (open mouths show the difference)."""
    from eavatar.metrics.regions import load_region_map

    test = subject.split("test")
    cams = {c: np.mean([abs(subject.c2w[i, 0, 3]) for i in test if subject.camera_indices[i] == c]) for c in subject.camera_ids()}
    frontal = min(cams, key=cams.get)
    mouth = subject.region_labels["mouth"]
    frames = [int(i) for i in test if subject.camera_indices[i] == frontal]
    area = {i: int((load_region_map(subject.region_paths[i]) == mouth).sum()) for i in frames}
    return sorted(sorted(frames, key=area.get, reverse=True)[: count * 3 : 3])  # open mouths, not all from one instant


def mouth_figure(out: Path, data: Path, variants: list[str], seed: int, path: Path) -> Path:
    """Rows: test frames; columns: ground truth, then each variant, cropped around the mouth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import load_ground_truth
    from eavatar.data.subject import load_subject
    from eavatar.metrics.regions import load_region_map

    subject = load_subject(data)
    frames = mouth_frames(subject, MOUTH_FRAMES)
    avatars = {v: load_avatar(out / v / f"seed{seed}" / "train" / "avatar.pt", "cpu") for v in variants}
    fig, axes = plt.subplots(len(frames), len(variants) + 1, figsize=(2.2 * (len(variants) + 1), 2.2 * len(frames)), squeeze=False)
    for r, i in enumerate(frames):
        ys, xs = np.nonzero((load_region_map(subject.region_paths[i]) == subject.region_labels["mouth"]).numpy())
        h, w = (int(v) for v in subject.image_sizes[i][::-1])
        y0, y1 = max(ys.min() - MOUTH_PAD, 0), min(ys.max() + MOUTH_PAD + 1, h)
        x0, x1 = max(xs.min() - MOUTH_PAD, 0), min(xs.max() + MOUTH_PAD + 1, w)
        background = torch.tensor(avatars[variants[0]][1].background)
        images = [load_ground_truth(subject, i, background)]
        for v in variants:
            avatar, info = avatars[v]
            images.append(render_subject_frame(avatar, subject, i, torch.tensor(info.background)).rgb)
        for c, (title, img) in enumerate(zip(["ground truth", *variants], images)):
            ax = axes[r, c]
            ax.imshow(img[y0:y1, x0:x1].clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(f"{subject.sequences[i]} t={int(subject.timesteps[i])}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(out: Path, variants: list[str], seeds: list[int], path: Path) -> Path:
    """Training PSNR (running mean), control-set size and number of Gaussians against step, mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for v in variants:
        runs = [read_history(out / v / f"seed{s}" / "history.csv") for s in seeds]
        n = min(len(h) for h in runs)
        step = runs[0]["step"].to_numpy()[:n]
        psnr = np.mean([h["train/psnr"].to_numpy()[:n] for h in runs], axis=0)
        window = min(PSNR_WINDOW, n)
        axes[0].plot(step[window - 1 :], np.convolve(psnr, np.ones(window) / window, mode="valid"), label=v)
        for ax, key in zip(axes[1:], ("train/num_control", "train/num_gaussians")):
            ax.plot(step, np.mean([h[key].to_numpy()[:n] for h in runs], axis=0), label=v)
    axes[0].set(title=f"PSNR of the training frame (running mean of {PSNR_WINDOW} logs)", xlabel="step", ylabel="dB")
    axes[1].set(title="control Gaussians per training frame", xlabel="step", ylabel="count")
    axes[2].set(title="Gaussians", xlabel="step", ylabel="count")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
