"""Notebook 04's tables and figures: metrics and ablation tables, training curves, side-by-side HTML."""

import json

import pandas as pd
import pytest

from eavatar.ui.experiments import ablation_experiments, ablation_figure, ablation_tables, curves_figure, eval_metrics, side_by_side

ABLATION = {
    "protocol": {"steps": 1000, "split": "test", "note": "free-form"},
    "runs": [
        {"variant": "baseline", "seed": 0, "psnr": 27.1, "ssim": 0.95, "lpips": None, "mouth_psnr": 24.0, "flicker": 0.01},
        {"variant": "control", "seed": 0, "psnr": 27.9, "ssim": 0.96, "lpips": 0.04, "mouth_psnr": 25.5, "flicker": 0.008},
    ],
    "summary": [{"variant": "baseline", "n": 1, "psnr_mean": 27.1, "psnr_std": 0.0}, {"variant": "control", "n": 1, "psnr_mean": 27.9, "psnr_std": 0.0}],
}


def test_missing_files_are_notes_not_errors(tmp_path):
    assert eval_metrics(tmp_path / "e.json")[0] is None
    protocol, runs, summary, note = ablation_tables(tmp_path / "ablation.json")
    assert (protocol, runs, summary) == (None, None, None) and "not found" in note


def test_no_ablation_experiments_is_a_note(tmp_path):
    """A fresh clone (here: not even a git repository) has no experiments; the DVC side is tested in tests/pipeline/test_ablation.py."""
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"ablation": {"seeds": [0], "max_num_iterations": 5, "variants": {"a": {}}}}))
    assert ablation_experiments(tmp_path) == (None, None, "no finished experiments of ablation/dvc.yaml (`make ablation` queues them)")
    (tmp_path / "params.yaml").write_text("ablation: {}\n")
    assert ablation_experiments(tmp_path)[2].startswith("ablation experiments could not be read:")


def test_curves_one_panel_per_metric_losses_on_a_log_axis():
    history = pd.DataFrame({"step": [0, 25, 50, 0, 25], "metric": ["loss/total"] * 3 + ["train/psnr"] * 2, "value": [1.0, 0.5, 0.25, 20.0, 22.0]})
    fig = curves_figure(history)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type != "log"


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
    html = side_by_side({"MLflow": pd.DataFrame({"psnr": [29.25]}), "DVC": "no experiments"})
    assert html.startswith("<div style='display:flex") and "<h4>MLflow</h4>" in html and "29.25" in html and "<i>no experiments</i>" in html

