"""Train an avatar with nerfstudio (`ns-train eavatar`'s config, knobs from params.yaml `train`).

Re-running after an interruption resumes from the latest checkpoint when the training
parameters are unchanged, and starts over (clearing the old run) when they changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from eavatar.cli.params import apply_overrides, load_params

RUN_NAME = "run"  # fixed timestamp, so checkpoints sit at a stable path and can be resumed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    p.add_argument("--section", default="train", help="its section with the training knobs (video/dvc.yaml: train_video)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--out", type=Path, default=Path("artifacts/train"), help="output folder (avatar.pt, nerfstudio run)")
    p.add_argument("--history", type=Path, default=Path("metrics/train_history.csv"), help="copy of the loss curve for `dvc plots`")
    p.add_argument("--run-name", default="", help="MLflow run name (default: train-run)")
    p.add_argument("--init-mesh", type=Path, default=None, help="seed the Gaussians from this head-space mesh (Stage I: artifacts/geometry/mesh.ply) instead of the template")


def build_config(params: dict[str, Any], data: Path, out: Path, where: str):
    """The nerfstudio TrainerConfig of ``ns-train eavatar`` with params.yaml applied."""
    from eavatar.ns.method import eavatar_trainer_config, optimizer_configs

    cfg = eavatar_trainer_config()
    max_steps = int(params.get("max_steps", cfg.max_num_iterations))
    cfg.max_num_iterations = max_steps
    cfg.optimizers = optimizer_configs(max_steps)
    for group, lr in (params.get("lr") or {}).items():
        if group not in cfg.optimizers:
            raise SystemExit(f"{where}.lr.{group}: unknown parameter group (known: {', '.join(cfg.optimizers)})")
        cfg.optimizers[group]["optimizer"].lr = float(lr)
        if cfg.optimizers[group]["scheduler"] is not None:
            cfg.optimizers[group]["scheduler"].lr_final = float(lr) * 0.1
    cfg.pipeline.model = apply_overrides(cfg.pipeline.model, params.get("model") or {}, f"{where}.model")
    cfg.pipeline.datamanager.dataparser.data = data
    cfg.machine.seed = int(params.get("seed", 42))
    cfg.steps_per_save = int(params.get("save_every", cfg.steps_per_save))
    cfg.steps_per_eval_image = int(params.get("eval_every", cfg.steps_per_eval_image))
    cfg.output_dir = out
    cfg.experiment_name = "nerfstudio"
    cfg.timestamp = RUN_NAME
    cfg.vis = "tensorboard"
    cfg.viewer.quit_on_train_completion = True
    unknown = set(params) - {"max_steps", "lr", "model", "seed", "save_every", "eval_every"}
    if unknown:
        raise SystemExit(f"{where}.{sorted(unknown)[0]}: unknown parameter")
    return cfg


#: Subpackages whose source decides what a training run computes (the model, the rasteriser, the trainer).
TRAINING_CODE = ("avatar", "render", "ns")


def training_code_hash(root: Path = Path(__file__).resolve().parents[1]) -> str:
    """sha256 over the Python sources of ``TRAINING_CODE`` under the package ``root``: after a
    change to the model, a re-run must train again, not resume a finished run of the old code."""
    digest = hashlib.sha256()
    for package in TRAINING_CODE:
        for source in sorted((root / package).rglob("*.py")):
            digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def fingerprint(params: dict[str, Any], data: Path) -> str:
    """What must match for a checkpoint to be resumed: the training params, the subject and the
    training code."""
    transforms = data / "transforms.json" if data.is_dir() else data
    blob = json.dumps(params, sort_keys=True) + hashlib.sha256(transforms.read_bytes()).hexdigest() + training_code_hash()
    return hashlib.sha256(blob.encode()).hexdigest()


def with_seed_mesh(params: dict[str, Any], mesh: str, source: str) -> dict[str, Any]:
    """``params`` plus the hash of the mesh that seeds the Gaussians (if any): a new Stage I mesh
    at the same path then restarts a resumable run instead of resuming the old one."""
    if not mesh:
        return params
    if not Path(mesh).is_file():
        raise SystemExit(f"{source}: {mesh}: file not found (make it with `eavatar geometry` or `dvc repro geometry`)")
    return {**params, "init_mesh_sha256": hashlib.sha256(Path(mesh).read_bytes()).hexdigest()}


def latest_step(checkpoint_dir: Path) -> int | None:
    steps = [int(p.stem.split("-")[1]) for p in checkpoint_dir.glob("step-*.ckpt")]
    return max(steps) if steps else None


def prepare_resume(cfg, params: dict[str, Any], data: Path) -> int:
    """Point cfg at the latest checkpoint when resuming is sound; return the first step to run."""
    base = cfg.get_base_dir()
    stamp = base / "params_fingerprint.txt"
    fp = fingerprint(params, data)
    if base.exists() and (not stamp.is_file() or stamp.read_text() != fp):
        print(f"training params, data or code changed since {base} was written: starting over")
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fp)
    step = latest_step(cfg.get_checkpoint_dir())
    if step is None:
        return 0
    cfg.load_dir = cfg.get_checkpoint_dir()
    total = cfg.max_num_iterations
    cfg.max_num_iterations = max(total - (step + 1), 0)
    print(f"resuming from step {step} of {total} ({cfg.load_dir})")
    return step + 1


def run(args: argparse.Namespace) -> int:
    from nerfstudio.scripts.train import main as ns_train_main

    params = load_params(args.params, args.section)
    cfg = build_config(params, args.data, args.out, f"{args.params}:{args.section}")
    cfg.mlflow_run_name = args.run_name
    if args.init_mesh is not None:
        cfg.pipeline.model.init_mesh = str(args.init_mesh)
    source = "--init-mesh" if args.init_mesh is not None else f"{args.params}:{args.section}.model.init_mesh"
    params = with_seed_mesh(params, cfg.pipeline.model.init_mesh, source)
    prepare_resume(cfg, params, args.data)
    if cfg.max_num_iterations > 0:
        ns_train_main(cfg)
    else:  # stopped after the last checkpoint: export it without training further
        print("no steps left: exporting the last checkpoint")
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        trainer.finish()
    produced = cfg.get_base_dir() / "avatar.pt"
    final = args.out / "avatar.pt"
    shutil.copy2(produced, final)
    args.history.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cfg.get_base_dir() / "history.csv", args.history)
    print(f"avatar written to {final}")
    return 0
