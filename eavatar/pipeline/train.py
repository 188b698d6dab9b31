"""The train stage: ``ns-train eavatar``'s config with a params section applied, run resumably.

The run sits at a fixed path (``<out>/nerfstudio/eavatar/run``) so a killed stage finds its
checkpoints. It resumes when the resolved training config, the subject, the seed mesh and the
training code are those that wrote them, and starts over otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

from eavatar.config import apply_overrides, to_cli_args
from eavatar.data.subject import load_subject
from eavatar.errors import EAvatarError
from eavatar.ns.method import eavatar_trainer_config
from eavatar.ns.trainer import EAvatarTrainerConfig
from eavatar.provenance import code_hash

RUN_NAME = "run"  # a fixed timestamp: checkpoints at a stable path that a re-run can resume
#: Fields that say where a run goes or how fast, not what it computes: left out of the resume
#: fingerprint (the thread count changes only the order of floating-point sums).
PLUMBING = ("output_dir", "experiment_name", "timestamp", "vis", "load_dir", "load_step", "load_checkpoint", "relative_model_dir", "viewer", "logging", "mlflow_run_name", "threads", "threads_every")


def training_config(overrides: dict[str, Any], data: Path, out: Path, where: str) -> EAvatarTrainerConfig:
    """``ns-train eavatar``'s config with ``overrides`` (a params section) applied, writing under ``out``."""
    cfg = apply_overrides(eavatar_trainer_config(), overrides, where)
    cfg.pipeline.datamanager.dataparser.data = data
    cfg.output_dir = out
    cfg.experiment_name = "nerfstudio"
    cfg.timestamp = RUN_NAME
    cfg.vis = "tensorboard"
    cfg.viewer.quit_on_train_completion = True
    return cfg


def ns_train_command(overrides: dict[str, Any], data: Path) -> str:
    """The ``ns-train`` command line that trains the same avatar."""
    return shlex.join(["ns-train", "eavatar", "--data", str(data), *to_cli_args(overrides)])


def fingerprint(cfg: EAvatarTrainerConfig, data: Path) -> str:
    """What must match for a checkpoint to be resumed: the resolved config (every default
    included), the subject's transforms.json, the seed mesh and the training code."""
    resolved = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in PLUMBING}
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode())
    digest.update(((data / "transforms.json") if data.is_dir() else data).read_bytes())
    mesh = cfg.pipeline.model.init_mesh
    if mesh:
        digest.update(Path(mesh).read_bytes())
    digest.update(code_hash("eavatar.cli.train").encode())  # exactly the train stage's code deps (scripts/dvc_deps.py)
    return digest.hexdigest()


def latest_step(checkpoint_dir: Path) -> int | None:
    steps = [int(p.name.split("-")[1].split(".")[0]) for p in checkpoint_dir.glob("step-*.ckpt")]
    return max(steps) if steps else None


def prepare_resume(cfg: EAvatarTrainerConfig, data: Path) -> int | None:
    """Point ``cfg`` at the latest checkpoint when resuming is sound (clear the run when it is
    not); return the checkpoint's step, or None for a fresh run."""
    base = cfg.get_base_dir()
    stamp = base / "params_fingerprint.txt"
    fp = fingerprint(cfg, data)
    if base.exists() and (not stamp.is_file() or stamp.read_text() != fp):
        print(f"training config, data or code changed since {base} was written: starting over")
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fp)
    for partial in cfg.get_checkpoint_dir().glob("*.partial"):  # a write the kill interrupted
        partial.unlink()
    step = latest_step(cfg.get_checkpoint_dir())
    if step is not None:
        cfg.load_dir, cfg.load_step = cfg.get_checkpoint_dir(), step
        print(f"resuming from step {step} of {cfg.max_num_iterations} ({cfg.load_dir})")
    return step


def check_inputs(cfg: EAvatarTrainerConfig, data: Path, where: str) -> None:
    """Fail before nerfstudio starts, with the file and the fix, on a bad subject or seed mesh."""
    load_subject(data)
    mesh = cfg.pipeline.model.init_mesh
    if mesh and not Path(mesh).is_file():
        raise FileNotFoundError(f"{where}: pipeline.model.init_mesh {mesh}: file not found (make it with `eavatar geometry` or `dvc repro geometry`)")


def train(cfg: EAvatarTrainerConfig, data: Path, out: Path, history: Path | None = None) -> Path:
    """Train (or resume, or only export a finished run); copy ``avatar.pt`` to ``out`` and the
    loss curve to ``history``. Returns the avatar's path."""
    from nerfstudio.scripts.train import main as ns_train_main

    step = prepare_resume(cfg, data)
    produced = cfg.get_base_dir() / "avatar.pt"
    produced.unlink(missing_ok=True)
    if step is None or step + 1 < cfg.max_num_iterations:
        ns_train_main(cfg)
    else:  # the last checkpoint is the end of the run: export it without training further
        print("no steps left: exporting the last checkpoint")
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        trainer.finish()
    if not produced.is_file():  # nerfstudio returns normally after Ctrl-C
        raise EAvatarError(f"{cfg.get_base_dir()}: training stopped before its last step (interrupted?); run `eavatar train` again to resume from the latest checkpoint")
    final = out / "avatar.pt"
    shutil.copy2(produced, final)
    if history is not None:
        history.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cfg.get_base_dir() / "history.csv", history)
    return final
