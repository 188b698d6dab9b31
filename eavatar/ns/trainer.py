"""nerfstudio's Trainer plus MLflow tracking and the ``avatar.pt`` export at the end."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig

from eavatar.avatar.checkpoint import AvatarInfo, save_avatar
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


class EAvatarTrainer(Trainer):
    config: EAvatarTrainerConfig

    def setup(self, test_mode="val") -> None:
        super().setup(test_mode=test_mode)
        self.run = TrackedRun(run_name=self.config.mlflow_run_name or f"train-{self.config.timestamp}", experiment=self.config.mlflow_experiment, tags={"stage": "train"})
        self.run.__enter__()
        cfg = self.config
        self.run.log_params(
            {
                "model": dataclasses.asdict(cfg.pipeline.model),
                "optimizers": {k: {"lr": v["optimizer"].lr} for k, v in cfg.optimizers.items()},
                "max_num_iterations": cfg.max_num_iterations,
                "data": str(cfg.pipeline.datamanager.dataparser.data),
                "device": str(self.device),
                "start_step": self._start_step,
            }
        )

    def _load_checkpoint(self) -> None:
        # nerfstudio's checkpoints hold numpy scalars (scheduler state), which torch>=2.6's
        # weights-only loading refuses; these files are our own, so allow exactly those types.
        with torch.serialization.safe_globals([np._core.multiarray.scalar, np.dtype, type(np.dtype(np.float64))]):
            super()._load_checkpoint()
        # A resumed run with nothing left to do must still save under its real step.
        self.step = max(self._start_step - 1, 0)

    def train_iteration(self, step: int):
        loss, loss_dict, metrics_dict = super().train_iteration(step)
        if step % self.config.mlflow_log_every == 0:
            values = {f"loss/{k}": float(v) for k, v in loss_dict.items()}
            values.update({f"train/{k}": float(v) for k, v in metrics_dict.items()})
            values["loss/total"] = float(loss)
            self.run.log_metrics(values, step=step)
            self.append_history(step, values)
        return loss, loss_dict, metrics_dict

    def append_history(self, step: int, values: dict[str, float]) -> None:
        """history.csv beside the checkpoints: the training curve `dvc plots show` draws."""
        path = self.base_dir / "history.csv"
        keys = sorted(values)
        if not path.is_file():
            path.write_text(",".join(["step", *keys]) + "\n")
        header = path.read_text().splitlines()[0].split(",")[1:]
        with path.open("a") as f:
            f.write(",".join([str(step), *(f"{values.get(k, float('nan')):.6g}" for k in header)]) + "\n")

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
        return save_avatar(self.avatar_path(), model.avatar, info)

    def export_samples(self) -> list[Path]:
        """The canonical PLY and ground truth | render of the first test frame, for the MLflow run."""
        import imageio.v3 as iio

        from eavatar.avatar.ply import export_canonical_ply
        from eavatar.drive import load_rgb, render_subject_frame

        model = self.pipeline.model
        subject = model.kwargs["metadata"]["subject"]
        index = int(subject.split("test")[0])
        with torch.no_grad():
            pred = render_subject_frame(model.avatar, subject, index, model.background).rgb.cpu()
        sheet = torch.cat([load_rgb(subject.image_paths[index], model.background.cpu()), pred], dim=1)
        sample = self.base_dir / "sample_test_frame.png"
        iio.imwrite(sample, (sheet.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        return [export_canonical_ply(self.base_dir / "canonical.ply", model.avatar), sample]

    def finish(self) -> Path:
        """Export avatar.pt, log it with the canonical PLY and a sample render, close the MLflow run."""
        path = self.export_avatar()
        self.run.log_metrics({"train/num_gaussians": float(len(self.pipeline.model.avatar.canonical))}, step=self.step)
        self.run.log_artifacts([path, self.base_dir / "config.yml"], artifact_path="checkpoint")
        self.run.log_artifacts(self.export_samples(), artifact_path="samples")
        self.run.__exit__(None, None, None)
        return path

    def _after_train(self) -> None:
        self.finish()
        super()._after_train()


def device_type() -> str:
    """CUDA when present, else CPU: chosen once, here, never by a flag."""
    return "cuda" if torch.cuda.is_available() else "cpu"
