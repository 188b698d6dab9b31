import warnings

import mlflow
import pytest

from eavatar.tracking.mlflow_run import TrackedRun, flatten, provenance_tags, tracking_uri


def test_flatten_dotted_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_default_store_is_local_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_run_is_recorded_and_searchable(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    art = tmp_path / "render.png"
    art.write_bytes(b"png")
    with TrackedRun("unit", experiment="eavatar-test", tags={"stage": "test"}) as run:
        run.log_params({"model": {"hidden_dim": 64}})
        for step in range(3):
            run.log_metrics({"loss/rgb": 1.0 / (step + 1)}, step=step)
        run.log_artifacts([art], artifact_path="renders")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["eavatar-test"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["params.model.hidden_dim"] == "64"
    assert row["metrics.loss_rgb"] == pytest.approx(1 / 3)
    assert row["tags.stage"] == "test" and row["tags.git_commit"]
    history = mlflow.tracking.MlflowClient().get_metric_history(run.run_id, "loss_rgb")
    assert [m.step for m in history] == [0, 1, 2]


def test_tracking_failure_warns_and_does_not_raise(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TrackedRun("broken", experiment="eavatar-test") as run:
            run.log_metrics({"loss": 1.0}, step=0)
            run.log_params({"a": 1})
    assert not run.enabled
    assert any("training continues without tracking" in str(w.message) for w in caught)


def test_provenance_tags_without_git(tmp_path):
    tags = provenance_tags(tmp_path)
    assert tags["dvc_lock_sha256"] == "absent"
    assert "git_commit" in tags
