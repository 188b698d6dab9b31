"""Readers of what has been run (notebook 04): MLflow runs and histories, DVC experiments, CSV histories."""

from eavatar.tracking.runs import csv_history, dvc_experiments, dvc_rows, mlflow_history, mlflow_runs, training_history


def test_missing_store_and_history_are_notes_not_errors(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow_runs(uri) == (None, f"no MLflow store at {tmp_path / 'mlflow.db'} (runs appear after `dvc repro` or `eavatar train`)")
    assert not (tmp_path / "mlflow.db").exists()  # looking must not create a store
    assert csv_history(tmp_path / "h.csv")[0] is None


def test_tracking_uri_prefers_the_environment(monkeypatch, tmp_path):
    from eavatar.tracking.mlflow_run import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri(tmp_path) == "http://tracking:5000"


def test_mlflow_runs_and_history_from_a_real_store(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("eavatar")
    with mlflow.start_run(run_name="train-a", tags={"stage": "train"}) as run:
        for step in range(3):
            mlflow.log_metrics({"loss/total": 1.0 / (step + 1), "train/psnr": 20.0 + step}, step=step)
    with mlflow.start_run(run_name="evaluate-a", tags={"stage": "evaluate"}):
        mlflow.log_metric("test/psnr", 28.5)
    table, note = mlflow_runs(uri)
    assert note.startswith("2 MLflow runs") and list(table["run"]) == ["evaluate-a", "train-a"]
    assert {"loss/total", "train/psnr", "test/psnr", "stage"} <= set(table.columns)
    history = mlflow_history(uri, run.info.run_id, ["loss/total", "train/psnr"])
    assert len(history) == 6 and history[history.metric == "train/psnr"]["value"].tolist() == [20.0, 21.0, 22.0]
    with mlflow.start_run(run_name="train-resumed-nothing-left", tags={"stage": "train"}):
        mlflow.log_metric("train_num_gaussians", 900.0, step=3)  # one step: no curve
    curves, source = training_history(uri, mlflow_runs(uri)[0], tmp_path / "absent.csv")
    assert source.startswith("MLflow run train-a") and set(curves["metric"]) == {"loss/total", "train/psnr"}
    assert training_history(uri, None, tmp_path / "absent.csv")[0] is None


def test_csv_history_is_a_long_table(tmp_path):
    (tmp_path / "h.csv").write_text("step,loss/total,train/psnr\n0,1.0,20\n25,0.5,22\n50,0.25,\n")
    history, note = csv_history(tmp_path / "h.csv")
    assert note.endswith("3 logged steps") and len(history) == 5  # the empty cell is dropped
    assert set(history.columns) == {"step", "metric", "value"}


def test_dvc_rows_flatten_revisions_and_experiments():
    metrics = {"metrics/eval.json": {"data": {"psnr": 29.3, "per_frame": [1, 2]}}, "metrics/geometry.json": {"error": {"type": "FileNotFoundError"}}}
    exp = {"rev": "abcdef1234", "name": "exp-steps", "data": {"timestamp": "t", "params": {"params.yaml": {"data": {"train": {"max_steps": 3000}}}}, "metrics": metrics}}
    entries = [
        {"rev": "workspace", "name": None, "data": {"timestamp": None, "params": {"params.yaml": {"data": {"train": {"max_steps": 3500}}}}, "metrics": {}}},
        {"rev": "0123456789", "name": "main", "data": {"params": {}, "metrics": metrics}, "experiments": [{"revs": [exp], "executor": {"state": "success"}}]},
    ]
    rows = dvc_rows(entries)
    assert [(r["name"], r["kind"]) for r in rows] == [("workspace", "workspace"), ("main", "commit"), ("exp-steps", "experiment")]
    assert rows[2]["state"] == "success" and "state" not in rows[0]
    assert rows[2]["metrics/eval.json:psnr"] == 29.3 and rows[2]["params:params.yaml:train.max_steps"] == 3000
    assert "metrics/eval.json:per_frame" not in rows[2]


def test_dvc_outside_a_dvc_project_is_a_note(tmp_path):
    table, note = dvc_experiments(tmp_path, timeout=60)
    assert table is None and note.startswith("`dvc exp show` failed: ERROR: you are not inside of a DVC repository")
