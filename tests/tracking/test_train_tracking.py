"""A training that crashes ends its MLflow run FAILED (the trainer opens the run in setup() and
closes it only in finish())."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_crash_in_training_ends_the_mlflow_run_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
    from eavatar.ns.method import eavatar_trainer_config
    from eavatar.ns.trainer import EAvatarTrainer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    subject = generate_synthetic_subject(
        tmp_path / "subject",
        SyntheticConfig(resolution=24, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=2, mesh_subdivisions=2, supersampling=1),
    )
    cfg = eavatar_trainer_config()
    cfg.pipeline.datamanager.dataparser.data = subject
    cfg.pipeline.model.init_mesh = ""
    cfg.pipeline.model.avatar.init.num_points = 200
    cfg.max_num_iterations = 6
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = cfg.steps_per_eval_batch = 1000
    cfg.output_dir, cfg.experiment_name, cfg.timestamp, cfg.vis = tmp_path / "out", "crash", "run", "tensorboard"
    cfg.mlflow_run_name = "train-crash"
    cfg.mlflow_experiment = "eavatar-crash"

    real = EAvatarTrainer.train_iteration

    def crash_at_step_2(self, step):
        if step == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self, step)

    monkeypatch.setattr(EAvatarTrainer, "train_iteration", crash_at_step_2)
    trainer = cfg.setup(local_rank=0, world_size=1)
    trainer.setup()
    with pytest.raises(RuntimeError, match="simulated"):
        trainer.train()

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("eavatar-crash").experiment_id])
    assert run.info.run_name == "train-crash"
    assert run.info.status == "FAILED", run.info.status
    assert "simulated" in run.data.tags["failure"]
    assert trainer.run.status == "FAILED"
