"""Time of one real training step of the demo avatar: median over steps, against an earlier revision.

    python benchmarks/bench_training_step.py [--steps 40] [--baseline-rev c9dbc68] [--out benchmarks/results/training_step.json]

The step is nerfstudio's: the trainer of params.yaml's train section is set up from the demo
run's last checkpoint (artifacts/train/nerfstudio/eavatar/run; run `dvc repro` first), so the
Gaussians, the control set, the optimisers and the loss (L1 + D-SSIM + LPIPS on a crop, region
weights) are those of the end of the demo's training; each timed step is the trainer's
callbacks before, ``train_iteration`` (data, render, loss, backward, optimiser steps) and the
callbacks after (densification statistics). With ``--baseline-rev`` the same steps run on that
revision's package in a child process (benchmarks/baseline.py) and the ratio is reported.
Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import at_revision, package_path, ratio  # noqa: E402

RUN = Path("artifacts/train/nerfstudio/eavatar/run")


def measure(params: Path, data: Path, steps: int, threads: int | None) -> dict:
    """Median and p90 milliseconds of ``steps`` training steps after the demo run's last checkpoint."""
    import torch
    import yaml
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    from eavatar.pipeline.train import latest_step, training_config

    if threads:
        torch.set_num_threads(threads)
    checkpoints = RUN / "nerfstudio_models"
    last = latest_step(checkpoints) if checkpoints.is_dir() else None
    if last is None:
        sys.exit(f"{checkpoints}: no checkpoint; run `dvc repro` first (the demo's train stage writes it)")
    train_section = yaml.safe_load(params.read_text())["train"]
    with tempfile.TemporaryDirectory(prefix="eavatar-step-") as tmp:
        cfg = training_config(train_section, data, Path(tmp), f"{params}: train")
        cfg.load_dir, cfg.load_step = checkpoints.resolve(), last
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        model = trainer.pipeline.model

        def step(s: int) -> None:
            for callback in trainer.callbacks:
                callback.run_callback_at_location(s, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
            trainer.train_iteration(s)
            for callback in trainer.callbacks:
                callback.run_callback_at_location(s, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)

        for s in range(last + 1, last + 4):  # warm-up: compiled kernels, caches
            step(s)
        times = []
        for s in range(last + 4, last + 4 + steps):
            t = time.perf_counter()
            step(s)
            times.append(1000 * (time.perf_counter() - t))
        gaussians = len(model.avatar.canonical)
    return {
        "step_ms": {"median": round(statistics.median(times), 1), "p90": round(sorted(times)[int(0.9 * (len(times) - 1))], 1), "n": len(times)},
        "gaussians": gaussians,
        "checkpoint_step": last,
        "threads": torch.get_num_threads(),
        "package": package_path(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as training uses)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--baseline-rev", help="git revision to time the same steps on, in this run (e.g. the commit before a speed change)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/training_step.json"))
    ap.add_argument("--as-baseline", action="store_true", help=argparse.SUPPRESS)  # set by baseline.at_revision
    args = ap.parse_args()
    forwarded = ["--steps", str(args.steps), "--params", str(args.params), "--data", str(args.data)] + (["--threads", str(args.threads)] if args.threads else [])
    current = measure(args.params, args.data, args.steps, args.threads)
    if args.as_baseline:
        print(json.dumps(current))
        return
    result = {"current": current}
    if args.baseline_rev:
        result["baseline"] = at_revision(args.baseline_rev, __file__, forwarded)
        result["speedup"] = ratio(result["baseline"]["step_ms"]["median"], current["step_ms"]["median"])
    result["meta"] = {"load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
