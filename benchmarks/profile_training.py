"""Where a real training step of the demo goes, per phase of its densification schedule.

    python benchmarks/profile_training.py [--until 3000] [--ops-every 500] [--out benchmarks/results/training_profile.json]

The trainer of ``params.yaml: train`` is set up from scratch on the synthetic subject (as `dvc repro`
does) and stepped to ``--until`` with the trainer's own step (benchmarks/baseline.py:
``timed_step``: callbacks, data, forward, losses, backward, optimiser steps, densification
statistics). Wall-clock timers around its parts give each step's split: data, generator (the MLPs
and sparse control), rasteriser forward, losses (L1, D-SSIM, LPIPS, priors, metrics), backward
(the rest of ``train_iteration``: autograd, nerfstudio's bookkeeping, MLflow every 25 steps),
optimiser and scheduler steps, and the callbacks after the step (densification). Medians per
phase: before densification (< refine_start), during it, after it (refine_stop onwards). Every
``--ops-every`` steps, 10 steps run under torch's profiler: the top operators by self CPU time
of each phase, the backward's attributed to its autograd node. What the full loop adds (eval images,
checkpoints, logging) is in the run's ``train/step_ms`` (MLflow). docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import timed_step  # noqa: E402

#: Steps of each window under torch's profiler.
PROFILED_STEPS = 10
PARTS = ("data", "generator", "rasterise", "losses", "optimiser", "callbacks_after")


class PartTimer:
    """Wall time of wrapped callables, summed per step."""

    def __init__(self):
        self.now: dict[str, float] = defaultdict(float)

    def wrap(self, owner, name: str, part: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.now[part] += 1000 * (time.perf_counter() - t)

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        out, self.now = dict(self.now), defaultdict(float)
        return out


def op_table(prof, top: int, steps: int) -> list[dict]:
    """The ``top`` operators by self CPU time over ``steps`` profiled steps: ms and calls a step,
    autograd nodes named by their function."""
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [
        {"op": e.key.replace("autograd::engine::evaluate_function: ", "backward: "), "self_ms": round(e.self_cpu_time_total / 1000 / steps, 2), "calls": round(e.count / steps, 1)}
        for e in rows
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--until", type=int, default=3000, help="last step (the demo's densification ends at 2,500)")
    ap.add_argument("--ops-every", type=int, default=500, help="steps between profiled windows of 10 steps")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/training_profile.json"))
    args = ap.parse_args()

    import torch
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    from eavatar.config import load_params
    from eavatar.pipeline.train import training_config

    with tempfile.TemporaryDirectory(prefix="eavatar-profile-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        cfg = training_config(load_params(args.params, "train"), args.data, Path(tmp) / "run", f"{args.params}: train")
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        model = trainer.pipeline.model
        densify = model.config.densify
        timer = PartTimer()
        timer.wrap(trainer.pipeline.datamanager, "next_train", "data")
        timer.wrap(model.avatar, "frame", "generator")
        timer.wrap(model.avatar, "rasterize", "rasterise")
        timer.wrap(model, "get_loss_dict", "losses")
        timer.wrap(model, "get_metrics_dict", "losses")
        timer.wrap(trainer.optimizers, "optimizer_scaler_step_some", "optimiser")
        timer.wrap(trainer.optimizers, "scheduler_step_all", "optimiser")
        for callback in trainer.callbacks:
            if TrainingCallbackLocation.AFTER_TRAIN_ITERATION in callback.where_to_run:
                timer.wrap(callback, "run_callback_at_location", "callbacks_after")

        def phase(step: int) -> str:
            return "before" if step < densify.refine_start else "during" if step < densify.refine_stop else "after"

        steps: dict[str, list[dict]] = defaultdict(list)
        ops: dict[str, list] = defaultdict(list)
        gaussians: dict[str, int] = {}
        for step in range(1, args.until + 1):
            if step % args.ops_every == 0:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    for k in range(PROFILED_STEPS):
                        timed_step(trainer, step + k)
                ops[phase(step)].append({"step": step, "ops": op_table(prof, args.top, PROFILED_STEPS)})
                timer.take()
                continue
            if step % args.ops_every < PROFILED_STEPS:  # inside a profiled window
                continue
            total = timed_step(trainer, step)
            parts = timer.take()
            parts = {p: parts.get(p, 0.0) for p in PARTS}
            parts["backward_and_rest"] = total - sum(parts.values())
            parts["total"] = total
            steps[phase(step)].append(parts)
            gaussians[phase(step)] = len(model.avatar.canonical)
        result = {"until": args.until, "threads": torch.get_num_threads(), "phases": {}}
        for name, rows in steps.items():
            result["phases"][name] = {
                "steps": len(rows),
                "gaussians_at_end": gaussians[name],
                "median_ms": {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]},
                "mean_total_ms": round(statistics.fmean(r["total"] for r in rows), 2),
                "profiled": ops.get(name, []),
            }
        result["date"] = time.strftime("%Y-%m-%d %H:%M")
        trainer.run.end("FINISHED")  # close the MLflow run before its temporary store goes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, p in result["phases"].items():
        print(name, p["steps"], "steps,", p["gaussians_at_end"], "Gaussians:", p["median_ms"])


if __name__ == "__main__":
    main()
