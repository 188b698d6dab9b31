"""How sharp can a splatted avatar be? Region PSNR of the ground truth low-passed by the pixel filter.

    python benchmarks/bench_pixel_filter_ceiling.py [--data data/synthetic] [--split test]

Every projected Gaussian is widened by a screen-space Gaussian of variance eps2d (px^2) before
it is drawn (the avatar's ``pixel_filter``; gsplat's default 0.3). Compositing only adds
non-negative footprints, so no avatar renders an edge sharper than that filter: the ground
truth convolved with it (sampled at the pixel grid) scores roughly the best PSNR an avatar can
reach at that filter. Compare a trained avatar's region PSNR with these numbers to tell a
renderer limit from a model limit. Results: benchmarks/results/pixel_filter_ceiling.json,
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VARIANCES = (0.1, 0.2, 0.3, 0.5)
RADIUS = 3  # taps each side: 3 sigma of the widest filter


def gaussian_kernel(variance: float) -> torch.Tensor:  # [3, 1, 7, 7], one per channel
    x = torch.arange(-RADIUS, RADIUS + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * variance))
    k = k[:, None] * k[None, :]
    return (k / k.sum())[None, None].repeat(3, 1, 1, 1)


def low_pass(image: torch.Tensor, variance: float) -> torch.Tensor:  # [H, W, 3] -> [H, W, 3]
    x = F.pad(image.permute(2, 0, 1)[None], (RADIUS,) * 4, mode="replicate")
    return F.conv2d(x, gaussian_kernel(variance), groups=3)[0].permute(1, 2, 0)


def main() -> None:
    from eavatar.data.frames import load_ground_truth, load_region_map
    from eavatar.data.subject import load_subject
    from eavatar.metrics.image import psnr
    from eavatar.metrics.regions import region_psnr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pixel_filter_ceiling.json"))
    args = parser.parse_args()

    subject = load_subject(args.data)
    background = torch.ones(3)
    frames = subject.split(args.split)
    rows = {v: {} for v in VARIANCES}
    for i in frames:
        gt = load_ground_truth(subject, int(i), background)
        regions = load_region_map(subject.region_paths[i]) if subject.region_paths[i] is not None else None
        for v in VARIANCES:
            blurred = low_pass(gt, v)
            values = {"psnr": float(psnr(blurred, gt))}
            if regions is not None:
                values.update({k: x for k, x in region_psnr(blurred, gt, regions, subject.region_labels).items() if x is not None})
            for k, x in values.items():
                rows[v].setdefault(k, []).append(x)
    result = {
        "data": str(args.data),
        "split": args.split,
        "frames": len(frames),
        "machine": platform.platform(),
        "ceiling": {str(v): {k: round(float(np.mean(x)), 2) for k, x in sorted(rows[v].items())} for v in VARIANCES},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for v in VARIANCES:
        print(f"eps2d {v}: " + ", ".join(f"{k} {x}" for k, x in result["ceiling"][str(v)].items()))


if __name__ == "__main__":
    main()
