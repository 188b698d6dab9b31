"""Tracking refinement checked where the truth is known (docs/video.md, "Tracking refinement").

    python scripts/refinement_check.py --jitter /tmp/raw/d10 /tmp/raw/d18     # subjects prepared with smoothing: 1

The synthetic subject's training instants get noise of the size a tracker shows on video (the
median over the ``--jitter`` subjects of eavatar.data.tracking_noise.tracking_jitter, or
``--noise CODE DEGREES TRANSLATION``), the same for every camera of an instant; test frames stay
exact. The ablation's full variant (params.yaml ``ablation``, its budget and seed) is trained on
the noisy subject without and with ``pipeline.model.refinement`` (``--clean`` also on the exact
subject), each evaluated on the test split; the training instants' code and pose errors against
the truth before and after refinement go with the PSNRs to ``--metrics``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eavatar.data.subject import load_subject  # noqa: E402
from eavatar.data.tracking_noise import TrackingNoise, control_errors, perturb_training_instants, tracking_jitter  # noqa: E402
from eavatar.pipeline.ablation import deep_merge, run_settings  # noqa: E402

REFINE = {"pipeline": {"model": {"refinement": {"enabled": True}}}}
KEYS = ("psnr", "ssim", "lpips", "mouth_psnr", "eyes_psnr", "brows_psnr")


def train_and_score(params: dict, data: Path, out: Path, name: str) -> tuple[Path, dict, float]:
    from eavatar.pipeline.evaluate import EvalOptions, evaluate
    from eavatar.pipeline.train import check_inputs, train, training_config

    cfg = training_config(params, data, out / name, f"refinement_check:{name}")
    cfg.mlflow_run_name = f"refinement-check/{name}"
    check_inputs(cfg, data, name)
    start = time.perf_counter()
    avatar = train(cfg, data, out / name)
    seconds = time.perf_counter() - start
    summary = evaluate(avatar, data, "test", out / name / "eval", EvalOptions(geometry_instants=0))
    return avatar, {k: summary.get(k) for k in KEYS}, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--data", type=Path, default=ROOT / "data/synthetic", help="the exact subject")
    parser.add_argument("--jitter", type=Path, nargs="*", default=[], help="video subjects (prepared with smoothing: 1) whose jitter sets the noise")
    parser.add_argument("--noise", type=float, nargs=3, metavar=("CODE", "DEGREES", "TRANSLATION"), help="noise sizes instead of --jitter")
    parser.add_argument("--clean", action="store_true", help="also train on the exact subject (the ceiling)")
    parser.add_argument("--runs", nargs="+", default=["noisy", "noisy_refined"], choices=["clean", "noisy", "noisy_refined"], help="which trainings (--clean adds clean)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the refined run, e.g. optimizers.refine_expression.optimizer.lr=1e-2")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts/refinement_check")
    parser.add_argument("--metrics", type=Path, default=ROOT / "metrics/refinement_check.json")
    args = parser.parse_args()

    if args.noise:
        noise, measured = TrackingNoise(*args.noise), {}
    else:
        if not args.jitter:
            parser.error("give --jitter subjects or --noise")
        measured = {str(p): asdict(tracking_jitter(load_subject(p))) for p in args.jitter}
        noise = TrackingNoise(**{k: float(np.median([m[k] for m in measured.values()])) for k in ("code", "rotation_deg", "translation")})
    print(f"noise: {noise} (jitter measured: {measured})", flush=True)
    noisy = args.out / "noisy_subject"
    perturb_training_instants(args.data, noisy, noise, seed=0)
    variant, seed, params = run_settings(args.params, "full")
    truth, noisy_subject = load_subject(args.data), load_subject(noisy)
    train_frames = truth.split("train")
    report = {
        "noise": asdict(noise),
        "jitter": measured,
        "variant": variant,
        "seed": seed,
        "steps": params["max_num_iterations"],
        "before": control_errors(truth, noisy_subject.expressions, noisy_subject.head_poses, train_frames),
        "runs": {},
    }
    refined = deep_merge(params, REFINE)
    for item in args.set:
        key, _, value = item.partition("=")
        nested: dict = yaml.safe_load(value)
        for part in reversed(key.split(".")):
            nested = {part: nested}
        refined = deep_merge(refined, nested)
    report["refined_overrides"] = args.set
    runs = [("clean", args.data, params), ("noisy", noisy, params), ("noisy_refined", noisy, refined)]
    runs = [r for r in runs if r[0] in args.runs or (r[0] == "clean" and args.clean)]
    for name, data, run_params in runs:
        avatar, scores, seconds = train_and_score(run_params, data, args.out, name)
        entry = {"test": scores, "train_seconds": seconds}
        if name == "noisy_refined":
            from eavatar.pipeline.refine_export import refined_controls

            expressions, poses, _ = refined_controls(avatar, noisy)
            entry["after"] = control_errors(truth, expressions, poses, train_frames)
        report["runs"][name] = entry
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(report, indent=1))
        print(json.dumps({name: entry}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
