"""Cost of sparse control and deformation-aware splitting against the baseline, per training step.

    python benchmarks/bench_control_cost.py [--runs artifacts/ablation] [--repeats 15]

Uses the avatars the ablation trained (seed 0 of each variant; run `make ablation` first),
so control sets and Gaussian counts are the real ones. For each variant a fresh process
times a training-like step (generator, control propagation when on, rasteriser, L1 loss,
backward) over the subject's test frames, and reports the median, and the growth of its
peak resident memory over those steps (ru_maxrss after minus before). It also times one
deformation-aware split of the Gaussians above tau_split. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

VARIANTS = ("baseline", "control", "control_split")


def measure(avatar_path: Path, data: Path, repeats: int) -> dict:
    """In this process: median step time and peak-RSS growth of the avatar's training step."""
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.data.subject import load_subject
    from eavatar.data.frames import frame_camera, frame_controls, load_ground_truth

    avatar, info = load_avatar(avatar_path, "cpu")
    subject = load_subject(data)
    background = torch.tensor(info.background)
    frames = subject.split("test")[:: max(len(subject.split("test")) // repeats, 1)][:repeats]
    inputs = [(frame_camera(subject, int(i)), *frame_controls(subject, int(i)), load_ground_truth(subject, int(i), background)) for i in frames]

    def step(camera, expression, pose, gt) -> int:
        avatar.zero_grad(set_to_none=True)
        g = avatar.frame(expression, pose)
        out = avatar.rasterize(g, camera, background)
        (out.rgb - gt).abs().mean().backward()
        return int(g.is_control.sum())

    step(*inputs[0])  # warm-up
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, controls = [], []
    for camera, expression, pose, gt in inputs:
        t = time.perf_counter()
        controls.append(step(camera, expression, pose, gt))
        times.append(time.perf_counter() - t)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "gaussians": len(avatar.canonical),
        "control_enabled": avatar.cfg.control.enabled,
        "median_control_set": statistics.median(controls),
        "step_ms": 1000 * statistics.median(times),
        "peak_rss_growth_mib": (rss_after - rss_before) / 1024,
        "frames": len(inputs),
    }


def split_time(avatar_path: Path, data: Path, tau_split: float) -> dict:
    """Time of one deformation-aware split of every Gaussian above tau_split at a test frame."""
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.densify import split_in_place
    from eavatar.data.subject import load_subject
    from eavatar.data.frames import frame_controls

    avatar, _ = load_avatar(avatar_path, "cpu")
    subject = load_subject(data)
    with torch.no_grad():
        magnitude = avatar.frame(*frame_controls(subject, int(subject.split("test")[0]))).exp_magnitude
    params = avatar.canonical.params
    optimizers = {k: torch.optim.Adam([params[k]]) for k in params}
    mask = magnitude > tau_split
    t = time.perf_counter()
    split_in_place(params, optimizers, {}, mask)
    return {"split_gaussians": int(mask.sum()), "split_ms": 1000 * (time.perf_counter() - t), "gaussians_before": len(mask)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("artifacts/ablation"), help="the ablation's output folder")
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--repeats", type=int, default=15, help="test frames timed per variant")
    ap.add_argument("--tau-split", type=float, default=0.033, help="params.yaml train.pipeline.model.densify.tau_split")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/control_cost.json"))
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: measure one avatar in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.repeats)))
        return
    rows = {}
    for variant in VARIANTS:
        path = args.runs / variant / "seed0" / "train" / "avatar.pt"
        if not path.is_file():
            sys.exit(f"{path}: missing; run `make ablation` first (it trains every variant)")
        cmd = [sys.executable, __file__, "--one", str(path), "--data", str(args.data), "--repeats", str(args.repeats)]
        rows[variant] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        print(variant, rows[variant], flush=True)
    for variant in VARIANTS[1:]:
        rows[variant]["step_ratio_to_baseline"] = rows[variant]["step_ms"] / rows["baseline"]["step_ms"]
    split = split_time(args.runs / "control_split" / "seed0" / "train" / "avatar.pt", args.data, args.tau_split)
    print("split", split)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(), "repeats": args.repeats}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "variants": rows, "split": split}, indent=2))


if __name__ == "__main__":
    main()
