"""A training that crashes ends its MLflow run FAILED (the trainer opens the run in setup() and
closes it only in finish())."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def tiny_config(tmp_path, monkeypatch, name: str):
    """A 6-step training of a tiny synthetic subject, tracked in tmp_path's MLflow store."""
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject
    from eavatar.ns.method import eavatar_trainer_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
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
    cfg.output_dir, cfg.experiment_name, cfg.timestamp, cfg.vis = tmp_path / "out", name, "run", "tensorboard"
    cfg.mlflow_run_name = f"train-{name}"
    cfg.mlflow_experiment = f"eavatar-{name}"
    return cfg


def test_crash_in_training_ends_the_mlflow_run_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from eavatar.ns.trainer import EAvatarTrainer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(tmp_path, monkeypatch, "crash")
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


def test_training_logs_its_threads_and_step_time_to_mlflow_not_to_the_history(tmp_path, monkeypatch, capsys):
    """A pinned thread count holds for the whole run and is what MLflow records; the wall time a
    step is in MLflow, and history.csv (a DVC plot, the same run to run) has neither."""
    import torch
    from mlflow.tracking import MlflowClient

    from eavatar.threads import cpu_threads

    cfg = tiny_config(tmp_path, monkeypatch, "threads")
    cfg.mlflow_log_every, cfg.threads, cfg.threads_every = 2, 1, 2
    with cpu_threads(None):  # restores the counts the training set
        trainer = cfg.setup(local_rank=0, world_size=1)
        trainer.setup()
        trainer.train()
        assert torch.get_num_threads() == 1
    assert "compute threads: 1 (fixed)" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("eavatar-threads").experiment_id])
    assert run.data.params["threads"] == "1"
    assert {m.value for m in client.get_metric_history(run.info.run_id, "train_threads")} == {1.0}
    step_ms = client.get_metric_history(run.info.run_id, "train_step_ms")
    assert sorted(m.step for m in step_ms) == [2, 4] and all(m.value > 0 for m in step_ms)  # none at the first log (step 0)
    header = trainer.history_path().read_text().splitlines()[0].split(",")
    assert "train/psnr" in header and not {"train/threads", "train/step_ms"} & set(header)
