"""What tracking refinement costs a video training step: the same trainer, refinement on and off in turn.

    python benchmarks/bench_refinement_cost.py [--data data/video/d10] [--rounds 6] [--steps 10]

The trainer of ``params.yaml: train_video`` (refinement on, its warm-up set to 0) is set up once
on the prepared clip (``dvc repro video/dvc.yaml:prepare@d10`` first) and warmed up; then
rounds of ``--steps`` real steps (callbacks, data, render, loss, backward, optimiser steps)
alternate between refinement active and refinement held at its warm-up (the residuals unused,
no prior terms), so both see the same Gaussians and machine state. Prints and writes the medians
and their ratio (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import timed_step  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/video/d10"))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=40, help="steps before timing (the first densification included)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/refinement_cost.json"))
    args = ap.parse_args()

    import torch
    from eavatar.config import load_params
    from eavatar.pipeline.ablation import deep_merge
    from eavatar.pipeline.train import training_config

    overrides = deep_merge(load_params(args.params, "train_video"), {"pipeline": {"model": {"refinement": {"enabled": True, "start_step": 0}}}})
    with tempfile.TemporaryDirectory(prefix="eavatar-refine-cost-") as tmp:
        cfg = training_config(overrides, args.data, Path(tmp), f"{args.params}: train_video")
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        model = trainer.pipeline.model
        step = 0

        def run(steps: int, refine: bool) -> list[float]:
            nonlocal step
            model.config.refinement.start_step = 0 if refine else 1 << 30  # held at the warm-up: residuals unused
            times = []
            for _ in range(steps):
                step += 1
                times.append(timed_step(trainer, step))
            return times

        run(args.warmup, True)
        on, off = [], []
        for _ in range(args.rounds):
            on += run(args.steps, True)
            off += run(args.steps, False)
        result = {
            "data": str(args.data),
            "gaussians": len(model.avatar.canonical),
            "threads": torch.get_num_threads(),
            "refinement_on_ms": round(statistics.median(on), 1),
            "refinement_off_ms": round(statistics.median(off), 1),
            "ratio": round(statistics.median(on) / statistics.median(off), 3),
            "steps_each": len(on),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
