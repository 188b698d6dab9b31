"""nerfstudio's Trainer plus MLflow tracking and the ``avatar.pt`` export at the end."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from eavatar.allocator import keep_freed_memory
from eavatar.avatar.checkpoint import AvatarInfo, first_line, save_avatar
from eavatar.errors import CheckpointError
from eavatar.threads import ThreadGovernor
from eavatar.tracking.history import append_history, truncate_history
from eavatar.tracking.mlflow_run import TrackedRun


@dataclass
class EAvatarTrainerConfig(TrainerConfig):
    """TrainerConfig with tracking settings."""

    _target: Type = field(default_factory=lambda: EAvatarTrainer)
    mlflow_experiment: str = "eavatar"
    """MLflow experiment that receives the run (store: MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    mlflow_log_every: int = 25
    """Steps between loss/metric logs to MLflow."""
    mlflow_run_name: str = ""
    """Name of the MLflow run (default: train-<timestamp>); the ablation names its runs."""
    threads: int = 0
    """Compute threads (torch and numba): 0 = the cores other processes leave free, re-checked every
    ``threads_every`` steps (two threads beside a busy process are several times slower than one;
    eavatar/threads.py). The count changes the order of floating-point sums, so a run is
    reproducible bit for bit at a fixed count: pin one (e.g. 2) to compare runs across loads."""
    threads_every: int = 100
    """Steps between re-checks of the other processes' load (with ``threads: 0``; 0: chosen once, at the start)."""


class EAvatarTrainer(Trainer):
    config: EAvatarTrainerConfig

    def setup(self, test_mode="val") -> None:
        total = self.config.max_num_iterations  # the run's length, counted from step 0
        keep_freed_memory()  # each step's freed tensors serve the next: no page faults a step (eavatar/allocator.py)
        self.threads = ThreadGovernor(self.config.threads)  # watches the cores from here: set-up is the first window
        super().setup(test_mode=test_mode)
        self.threads.update()
        CONSOLE.print(self.threads.describe())
        self.last_log = (self.step, time.perf_counter())  # for train/step_ms: wall time a step between logs
        # Resumed from a checkpoint: run only the steps left, and save under the real step
        # even when none are left.
        self.config.max_num_iterations = max(total - self._start_step, 0)
        self.step = max(self._start_step - 1, 0)
        truncate_history(self.history_path(), self._start_step)
        self.run = TrackedRun(run_name=self.config.mlflow_run_name or f"train-{self.config.timestamp}", experiment=self.config.mlflow_experiment, tags={"stage": "train"})
        self.run.__enter__()
        cfg = self.config
        self.run.log_params(
            {
                "model": dataclasses.asdict(cfg.pipeline.model),
                "optimizers": {k: {"lr": v["optimizer"].lr} for k, v in cfg.optimizers.items()},
                "max_num_iterations": total,
                "data": str(cfg.pipeline.datamanager.dataparser.data),
                "device": str(self.device),
                "start_step": self._start_step,
                "threads": self.config.threads or f"auto ({self.threads.threads} at start)",
            }
        )

    def _load_checkpoint(self) -> None:
        """nerfstudio's resume, with one clear error where the checkpoint does not fit this model
        (written by another version of eavatar, e.g. before the generator's FiLM scales)."""
        try:
            super()._load_checkpoint()
        except (ValueError, RuntimeError, KeyError) as err:
            where = self.config.load_dir or self.config.load_checkpoint
            raise CheckpointError(
                f"{where}: cannot resume from this checkpoint, it does not fit this version of eavatar's model "
                f"({type(err).__name__}: {first_line(err)}); start the run afresh (delete that folder, or train into another --out)"
            ) from err

    def setup_optimizers(self):
        """Learning-rate decays span the whole run, whatever ``max_num_iterations`` is."""
        for group in self.config.optimizers.values():
            if group.get("scheduler") is not None:
                group["scheduler"].max_steps = self.config.max_num_iterations
        return super().setup_optimizers()

    def save_checkpoint(self, step: int) -> None:
        """nerfstudio's checkpoint, written atomically and with plain Python numbers.

        A kill during the write leaves the previous checkpoint intact; numpy scalars (the
        learning-rate schedulers' state) are stored as floats so that torch's weights-only
        loading, which ns-viewer, ns-eval and ns-export use, accepts the file.
        """
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step-{step:09d}.ckpt"
        state = {
            "step": step,
            "pipeline": self.pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }
        partial = path.with_suffix(".ckpt.partial")
        torch.save(plain_numbers(state), partial)
        os.replace(partial, path)
        if self.config.save_only_latest_checkpoint:
            for old in self.checkpoint_dir.glob("*.ckpt"):
                if old != path:
                    old.unlink()

    def train(self) -> None:
        """nerfstudio's training loop; a crash ends the MLflow run as FAILED."""
        try:
            super().train()
        except BaseException as err:
            self.run.fail(err)
            raise

    def train_iteration(self, step: int):
        if self.config.threads_every > 0 and step % self.config.threads_every == 0 and self.threads.update() is not None:
            CONSOLE.print(f"step {step}: {self.threads.describe()}")
        loss, loss_dict, metrics_dict = super().train_iteration(step)
        if step % self.config.mlflow_log_every == 0:
            values = {f"loss/{k}": float(v.detach()) for k, v in loss_dict.items()}
            values.update({f"train/{k}": float(v) for k, v in metrics_dict.items()})
            values["loss/total"] = float(loss.detach())
            self.run.log_metrics({**values, **self.speed(step)}, step=step)
            append_history(self.history_path(), step, values)
        return loss, loss_dict, metrics_dict

    def speed(self, step: int) -> dict[str, float | None]:
        """For MLflow only (history.csv stays the same run to run): the compute threads, and the
        wall time a step since the previous log, everything included (callbacks, eval images,
        checkpoints; None at the first log)."""
        now = time.perf_counter()
        last_step, last_time = self.last_log
        self.last_log = (step, now)
        return {"train/threads": float(self.threads.threads), "train/step_ms": 1000 * (now - last_time) / (step - last_step) if step > last_step else None}

    def history_path(self) -> Path:
        return self.base_dir / "history.csv"

    def avatar_path(self) -> Path:
        return self.base_dir / "avatar.pt"

    def export_avatar(self) -> Path:
        model = self.pipeline.model
        subject = model.kwargs["metadata"]["subject"]
        info = AvatarInfo(
            expression_labels=list(subject.expression_labels),
            expression_space=subject.expression_space,
            background=model.background.tolist(),
            reference_head_pose=model.viewer_head_pose.tolist(),
            subject=str(subject.root),
            step=self.step,
        )
        refinement = None if model.refinement is None else model.refinement.export()
        return save_avatar(self.avatar_path(), model.avatar, info, refinement)

    def export_samples(self) -> list[Path]:
        """The canonical PLY and ground truth | render of the first test frame, for the MLflow run."""
        import imageio.v3 as iio

        from eavatar.avatar.drive import render_subject_frame
        from eavatar.avatar.ply import export_canonical_ply
        from eavatar.data.frames import load_ground_truth, to_uint8

        model = self.pipeline.model
        subject = model.kwargs["metadata"]["subject"]
        index = int(subject.split("test")[0])
        with torch.no_grad():
            pred = render_subject_frame(model.avatar, subject, index, model.background).rgb.cpu()
        sheet = torch.cat([load_ground_truth(subject, index, model.background.cpu()), pred], dim=1)
        sample = self.base_dir / "sample_test_frame.png"
        iio.imwrite(sample, to_uint8(sheet))
        return [export_canonical_ply(self.base_dir / "canonical.ply", model.avatar), sample]

    def finish(self) -> Path:
        """Export avatar.pt, log it with the canonical PLY and a sample render, close the MLflow run."""
        try:
            path = self.export_avatar()
            model = self.pipeline.model
            self.run.log_metrics({"train/num_gaussians": float(len(model.avatar.canonical))}, step=self.step)
            if model.refinement is not None:  # the residuals' size per coefficient, where the tracker was corrected most
                self.run.log_metrics({f"refine/{k}": v for k, v in model.refinement.summary(model.expression_labels).items()}, step=self.step)
            self.run.log_artifacts([path, self.base_dir / "config.yml"], artifact_path="checkpoint")
            self.run.log_artifacts(self.export_samples(), artifact_path="samples")
        except BaseException as err:
            self.run.fail(err)
            raise
        self.run.end("FINISHED")
        return path

    def _after_train(self) -> None:
        self.finish()
        super()._after_train()


def plain_numbers(obj):
    """``obj`` with every numpy scalar replaced by the Python number (recursively)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_numbers(v) for v in obj)
    return obj
