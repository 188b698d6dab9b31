"""Time of one real training step of the demo avatar: median over steps, against an earlier revision.

    python benchmarks/bench_training_step.py --baseline-rev REV [--rounds 8] [--steps 10] [--run DIR] [--at 500,1500,2599] [--baseline-run DIR] [--baseline-params FILE] [--out benchmarks/results/training_step.json]

The step is nerfstudio's: the trainer of params.yaml's train section is set up from a checkpoint
of the demo run (``--run``, default artifacts/train/nerfstudio/eavatar/run; run `dvc repro`
first): its last, or each step of ``--at`` (a run trained with ``save_only_latest_checkpoint:
false`` keeps them: 500 starts densification at about 6,000 Gaussians, 1,500 is inside it, the
last is after it at 12,000), so the Gaussians, the control set, the optimisers and the loss
(L1 + D-SSIM + LPIPS on a crop, region weights) are those of that point of the demo's
training; each timed step is the trainer's
callbacks before, ``train_iteration`` (data, render, loss, backward, optimiser steps) and the
callbacks after (densification statistics). The current package and, with ``--baseline-rev``,
that revision's are each set up once in a child process and asked in turn for ``--steps``
steps, ``--rounds`` times (benchmarks/baseline.py: both see the same machine state). A revision
whose model differs (fewer generator parameters: before the FiLM scales) cannot load the
current checkpoint; ``--baseline-run`` gives it a run of the same config trained by its own
code, and ``--baseline-params`` its own params file (each revision's demo, when the demo's config
changed: a densification cap, say). Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import interleaved, package_path, ratio, reply, report, summary, timed_step  # noqa: E402

RUN = Path("artifacts/train/nerfstudio/eavatar/run")


def serve(params: Path, data: Path, run: Path, threads: int | None, at: int | None) -> None:
    """Set the trainer up from the demo's checkpoint of step ``at`` (None: the last), then time the steps each stdin line asks for."""
    import torch
    import yaml
    from eavatar.pipeline.train import latest_step, training_config

    if threads:
        torch.set_num_threads(threads)
    checkpoints = run / "nerfstudio_models"
    last = latest_step(checkpoints) if checkpoints.is_dir() else None
    if last is None:
        sys.exit(f"{checkpoints}: no checkpoint; run `dvc repro` first (the demo's train stage writes it)")
    if at is not None:
        if not (checkpoints / f"step-{at:09d}.ckpt").is_file():
            sys.exit(f"{checkpoints}: no checkpoint of step {at} (train with save_only_latest_checkpoint: false)")
        last = at
    with tempfile.TemporaryDirectory(prefix="eavatar-step-") as tmp:
        cfg = training_config(yaml.safe_load(params.read_text())["train"], data, Path(tmp), f"{params}: train")
        cfg.load_dir, cfg.load_step = checkpoints.resolve(), last
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        step = last

        def one_step() -> float:
            nonlocal step
            step += 1
            return timed_step(trainer, step)

        for _ in range(3):  # warm-up: compiled kernels, caches
            one_step()
        info = {"gaussians": len(trainer.pipeline.model.avatar.canonical), "checkpoint": str(checkpoints), "checkpoint_step": last, "threads": torch.get_num_threads(), "package": package_path()}
        reply(info)
        for line in sys.stdin:
            reply({"times": [one_step() for _ in range(int(line))]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="steps per round and package")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as training uses)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--run", type=Path, default=RUN, help="nerfstudio run whose checkpoints are timed")
    ap.add_argument("--at", type=lambda text: [int(v) for v in text.split(",")], default=[None], help="checkpoint steps to time, comma-separated (default: the last)")
    ap.add_argument("--serve-at", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-run", type=Path, help="the baseline revision's run (default: --run), for a revision that cannot load the current checkpoint")
    ap.add_argument("--baseline-params", type=Path, help="the baseline's params file (default: --params): each revision's own demo config, e.g. `git show REV:params.yaml`")
    ap.add_argument("--baseline-rev", required=True, help="git revision to time the same steps on, interleaved (e.g. the commit before a speed change)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/training_step.json"))
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # set by baseline.interleaved
    args = ap.parse_args()
    if args.serve:
        serve(args.params, args.data, args.run, args.threads, args.serve_at)
        return
    forwarded = ["--data", str(args.data), "--baseline-rev", args.baseline_rev] + (["--threads", str(args.threads)] if args.threads else [])
    baseline_params, baseline_run = args.baseline_params or args.params, args.baseline_run or args.run
    load_before = os.getloadavg()[0]
    phases = []
    for at in args.at:
        here = forwarded + ([] if at is None else ["--serve-at", str(at)])
        current_args = here + ["--params", str(args.params), "--run", str(args.run)]
        baseline_args = here + ["--params", str(baseline_params), "--run", str(baseline_run)]
        with tempfile.TemporaryDirectory(prefix="eavatar-step-mlflow-") as tmp:  # the trainers log runs: not into the user's ./mlflow.db
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            current, baseline = interleaved(args.baseline_rev, __file__, current_args, args.rounds, str(args.steps), baseline_args)
        phase = {
            "current": {**current["info"], "step_ms": summary(current["times"])},
            "baseline": {**baseline["info"], "revision": args.baseline_rev, "params": str(baseline_params), "step_ms": summary(baseline["times"])},
        }
        phase["speedup"] = ratio(phase["baseline"]["step_ms"]["median"], phase["current"]["step_ms"]["median"])
        phases.append(phase)
        print(f"step {phase['current']['checkpoint_step']}, {phase['current']['gaussians']} Gaussians: {phase['baseline']['step_ms']['median']} -> {phase['current']['step_ms']['median']} ms, {phase['speedup']}x", flush=True)
    result = phases[0] if len(phases) == 1 else {"phases": phases}
    result["meta"] = {"rounds": args.rounds, "steps_per_round": args.steps}
    report(result, args.out, load_before)


if __name__ == "__main__":
    main()
