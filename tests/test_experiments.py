"""Notebook 04's loaders: MLflow runs and histories, DVC experiments, metrics and ablation tables, curves."""

import json

import pytest

from eavatar.experiments import ablation_figure, ablation_tables, csv_history, curves_figure, dvc_experiments, dvc_rows, eval_metrics, mlflow_history, mlflow_runs, side_by_side, store_uri, training_history

ABLATION = {
    "protocol": {"steps": 1000, "split": "test", "note": "free-form"},
    "runs": [
        {"variant": "baseline", "seed": 0, "psnr": 27.1, "ssim": 0.95, "lpips": None, "mouth_psnr": 24.0, "flicker": 0.01},
        {"variant": "control", "seed": 0, "psnr": 27.9, "ssim": 0.96, "lpips": 0.04, "mouth_psnr": 25.5, "flicker": 0.008},
    ],
    "summary": [{"variant": "baseline", "n": 1, "psnr_mean": 27.1, "psnr_std": 0.0}, {"variant": "control", "n": 1, "psnr_mean": 27.9, "psnr_std": 0.0}],
}


def test_missing_files_and_store_are_notes_not_errors(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow_runs(uri) == (None, f"no MLflow store at {tmp_path / 'mlflow.db'} (runs appear after `dvc repro` or `eavatar train`)")
    assert not (tmp_path / "mlflow.db").exists()  # looking must not create a store
    assert csv_history(tmp_path / "h.csv")[0] is None and eval_metrics(tmp_path / "e.json")[0] is None
    protocol, runs, summary, note = ablation_tables(tmp_path / "ablation.json")
    assert (protocol, runs, summary) == (None, None, None) and "not found" in note


def test_store_uri_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert store_uri(tmp_path) == "http://tracking:5000"


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


def test_csv_history_and_curves(tmp_path):
    (tmp_path / "h.csv").write_text("step,loss/total,train/psnr\n0,1.0,20\n25,0.5,22\n50,0.25,\n")
    history, note = csv_history(tmp_path / "h.csv")
    assert note.endswith("3 logged steps") and len(history) == 5  # the empty cell is dropped
    fig = curves_figure(history)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type != "log"


def test_dvc_rows_flatten_revisions_and_experiments():
    metrics = {"metrics/eval.json": {"data": {"psnr": 29.3, "per_frame": [1, 2]}}, "metrics/geometry.json": {"error": {"type": "FileNotFoundError"}}}
    exp = {"rev": "abcdef1234", "name": "exp-steps", "data": {"timestamp": "t", "params": {"params.yaml": {"data": {"train": {"max_steps": 3000}}}}, "metrics": metrics}}
    entries = [
        {"rev": "workspace", "name": None, "data": {"timestamp": None, "params": {"params.yaml": {"data": {"train": {"max_steps": 3500}}}}, "metrics": {}}},
        {"rev": "0123456789", "name": "main", "data": {"params": {}, "metrics": metrics}, "experiments": [{"revs": [exp]}]},
    ]
    rows = dvc_rows(entries)
    assert [(r["name"], r["kind"]) for r in rows] == [("workspace", "workspace"), ("main", "commit"), ("exp-steps", "experiment")]
    assert rows[2]["metrics/eval.json:psnr"] == 29.3 and rows[2]["params:params.yaml:train.max_steps"] == 3000
    assert "metrics/eval.json:per_frame" not in rows[2]


def test_dvc_outside_a_dvc_project_is_a_note(tmp_path):
    table, note = dvc_experiments(tmp_path, timeout=60)
    assert table is None and note.startswith("`dvc exp show` failed: ERROR: you are not inside of a DVC repository")


def test_eval_and_ablation_tables_show_whatever_columns_are_there(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"psnr": 29.3, "ssim": 0.96, "lpips": None, "split": "test", "num_frames": 240}))
    table, _ = eval_metrics(tmp_path / "eval.json")
    assert table.loc["psnr", "value"] == 29.3 and "split" in table.index
    (tmp_path / "ablation.json").write_text(json.dumps(ABLATION))
    protocol, runs, summary, note = ablation_tables(tmp_path / "ablation.json")
    assert protocol["steps"] == 1000 and note.endswith("2 runs, 2 variants")
    assert list(runs.columns) == ["psnr", "ssim", "lpips", "mouth_psnr", "flicker"] and runs.index.names == ["variant", "seed"]
    assert summary.loc["control", "psnr_mean"] == pytest.approx(27.9)
    fig = ablation_figure(summary)
    assert [t.y.tolist() for t in fig.data] == [[27.1, 27.9]] and fig.data[0].error_y.array == (0.0, 0.0)


def test_side_by_side_puts_tables_and_notes_in_one_row():
    import pandas as pd

    html = side_by_side({"MLflow": pd.DataFrame({"psnr": [29.25]}), "DVC": "no experiments"})
    assert html.startswith("<div style='display:flex") and "<h4>MLflow</h4>" in html and "29.25" in html and "<i>no experiments</i>" in html
