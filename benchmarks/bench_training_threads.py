"""A training step on 1 and on all cores' threads, alone and beside a busy process, and what the governor picks.

    python benchmarks/bench_training_threads.py [--rounds 6] [--steps 10]

The trainer of ``params.yaml: train`` (the demo) is set up once on the synthetic subject and warmed
up; then, in each of two conditions (idle; one other process spinning on a core), rounds of
``--steps`` real steps alternate between 1 thread and as many as the cores, so every count sees
the same Gaussians and machine state. In each condition the training's own governor
(eavatar.threads.ThreadGovernor, ``threads: 0``) is asked once what it would run on. Prints and
writes the medians (docs/benchmarks.md, "Threads").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import timed_step  # noqa: E402

SPIN = "import time\nwhile True: pass"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/training_threads.json"))
    args = ap.parse_args()

    import os

    from eavatar.config import load_params
    from eavatar.pipeline.train import training_config
    from eavatar.threads import ThreadGovernor, set_threads, usable_cores

    cores = len(usable_cores())
    counts = sorted({1, cores})
    result: dict = {"cores": cores, "conditions": {}}
    with tempfile.TemporaryDirectory(prefix="eavatar-threads-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        cfg = training_config(load_params(args.params, "train"), args.data, Path(tmp) / "run", f"{args.params}: train")
        cfg.threads_every = 0  # chosen once at set-up: the benchmark sets the counts itself
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        step = 0

        def run(steps: int) -> list[float]:
            nonlocal step
            times = []
            for _ in range(steps):
                step += 1
                times.append(timed_step(trainer, step))
            return times

        run(args.warmup)
        for condition in ("idle", "one_busy_process"):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if condition != "idle" else None
            try:
                time.sleep(1.0)
                governor = ThreadGovernor()  # its first window: the second just slept through
                time.sleep(1.0)
                governor.update()
                chosen = governor.threads
                times: dict[int, list[float]] = {n: [] for n in counts}
                for _ in range(args.rounds):
                    for n in counts:
                        set_threads(n)
                        times[n] += run(args.steps)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            result["conditions"][condition] = {
                "governor_threads": chosen,
                "governor_saw_busy_cores": round(governor.last_others, 2),
                **{f"threads_{n}_ms": {"median": round(statistics.median(t), 1), "p90": round(sorted(t)[int(0.9 * (len(t) - 1))], 1)} for n, t in times.items()},
            }
        result["gaussians"] = len(trainer.pipeline.model.avatar.canonical)
        result["steps_each"] = args.rounds * args.steps
        result["date"] = time.strftime("%Y-%m-%d %H:%M")
        trainer.run.end("FINISHED")  # close the MLflow run before its temporary store goes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
