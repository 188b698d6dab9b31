"""Step time of variants of the demo's training, side by side: what a smaller model would buy.

    python benchmarks/bench_training_variants.py [--rounds 8] [--steps 10] [--variants FILE] [--out benchmarks/results/training_variants.json]

Each variant is a set of overrides of params.yaml's train section (default: the generator's
trunks at the demo's 3 x 64, 2 x 64, 3 x 48, 3 x 32, and without the pose branch). Every
variant's trainer is set up from scratch on the synthetic subject in this one process (the
Gaussians seeded from the demo's Stage I mesh: about 6,000, before densification), warmed up
for 20 steps, then asked in turn for ``--steps`` real steps (benchmarks/baseline.py:
``timed_step``), ``--rounds`` times with the order alternating, so all see the same machine
state. Speed only: what a variant costs in quality is a matter of training seeds
(docs/experiment-log.md). Results: docs/experiment-log.md, 2026-12-07.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import report, summary, timed_step  # noqa: E402

#: name -> overrides of the train section's pipeline.model.avatar.generator
GENERATOR_VARIANTS = {
    "demo (3 x 64)": {},
    "2 x 64": {"num_layers": 2},
    "3 x 48": {"hidden_dim": 48},
    "3 x 32": {"hidden_dim": 32},
    "no pose branch": {"pose_branch": False},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="steps per round and variant")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--variants", type=Path, help="JSON file: {name: overrides of the train section} (default: generator sizes)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/training_variants.json"))
    args = ap.parse_args()

    import torch

    from eavatar.config import load_params
    from eavatar.pipeline.ablation import deep_merge
    from eavatar.pipeline.train import training_config

    train = load_params(args.params, "train")
    if args.variants:
        variants = json.loads(args.variants.read_text())
    else:
        variants = {name: {"pipeline": {"model": {"avatar": {"generator": gen}}}} if gen else {} for name, gen in GENERATOR_VARIANTS.items()}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="eavatar-variants-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"  # not the user's ./mlflow.db
        trainers = {}
        for k, (name, overrides) in enumerate(variants.items()):
            cfg = training_config(deep_merge(train, overrides), args.data, Path(tmp) / f"variant{k}", f"{args.variants or 'variant'}: {name}")
            trainers[name] = cfg.setup(local_rank=0, world_size=1)
            trainers[name].setup()
        for step in range(1, 21):  # warm-up: compiled kernels, caches, the first steps' allocations
            for trainer in trainers.values():
                timed_step(trainer, step)
        times: dict[str, list[float]] = {name: [] for name in trainers}
        names = list(trainers)
        step = 20
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name] += [timed_step(trainers[name], step + 1 + k) for k in range(args.steps)]
            step += args.steps
        result = {
            "variants": {
                name: {
                    "overrides": variants[name],
                    "step_ms": summary(t),
                    "gaussians": len(trainers[name].pipeline.model.avatar.canonical),
                    "generator_parameters": sum(p.numel() for p in trainers[name].pipeline.model.avatar.generator.parameters()),
                }
                for name, t in times.items()
            },
            "threads": torch.get_num_threads(),
            "meta": {"rounds": args.rounds, "steps_per_round": args.steps},
        }
        for trainer in trainers.values():
            trainer.run.end("FINISHED")  # close the MLflow runs before their temporary store goes
    report(result, args.out, load_before)


if __name__ == "__main__":
    main()
