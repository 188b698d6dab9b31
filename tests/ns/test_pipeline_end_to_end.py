"""A tiny synthetic subject through the real stage commands: train (nerfstudio), resume, evaluate, render, export."""

import json
import subprocess
import sys

import pytest
import yaml
from plyfile import PlyData

from eavatar.cli.main import main
from eavatar.tracking.history import read_history

pytestmark = pytest.mark.slow

TINY_PARAMS = {
    "synthetic": {"seed": 0, "resolution": 48, "n_cameras": 2, "n_train_sequences": 2, "n_test_sequences": 1, "timesteps_per_sequence": 5, "mesh_subdivisions": 4},
    "train": {
        "max_num_iterations": 60,
        "machine": {"seed": 1},
        "steps_per_save": 20,
        "steps_per_eval_image": 1000,
        "pipeline": {
            "model": {
                "avatar": {"init": {"num_points": 800, "feature_dim": 8}, "generator": {"hidden_dim": 32, "num_layers": 2}},
                "loss": {"lpips_weight": 0.1, "lpips_start_step": 30, "lpips_crop": 32},
                "densify": {"refine_start": 20, "refine_every": 20, "refine_stop": 50},
            }
        },
    },
    "evaluate": {"split": "test"},
    "render": {"split": "test", "fps": 10, "orbit_frames": 4},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    (d / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    return d


@pytest.fixture(scope="module")
def trained(workdir):
    p = str(workdir / "params.yaml")
    assert main(["synthetic", "--params", p, "--out", str(workdir / "subject")]) == 0
    argv = ["train", "--params", p, "--data", str(workdir / "subject"), "--out", str(workdir / "train"), "--history", str(workdir / "history.csv")]
    assert main(argv) == 0
    return workdir


def test_training_writes_avatar_and_loss_falls(trained):
    assert (trained / "train" / "avatar.pt").is_file()
    rows = read_history(trained / "history.csv")
    assert {"loss/lpips", "loss/rgb"} <= set(rows.columns)
    first, last = rows["loss/rgb"].iloc[0], rows["loss/rgb"].iloc[-1]
    assert last < 0.8 * first, (first, last)


def test_rerun_with_same_params_resumes_instead_of_restarting(trained, capsys):
    p = str(trained / "params.yaml")
    argv = ["train", "--params", p, "--data", str(trained / "subject"), "--out", str(trained / "train"), "--history", str(trained / "h2.csv")]
    assert main(argv) == 0
    assert "resuming from step 59 of 60" in capsys.readouterr().out


def test_evaluate_render_export(trained):
    p = str(trained / "params.yaml")
    common = ["--avatar", str(trained / "train" / "avatar.pt"), "--data", str(trained / "subject")]
    metrics = trained / "metrics.json"
    assert main(["evaluate", "--params", p, *common, "--out", str(trained / "eval"), "--metrics", str(metrics)]) == 0
    summary = json.loads(metrics.read_text())
    assert summary["num_frames"] > 0 and summary["psnr"] > 10
    assert summary["lpips"] is not None and 0 <= summary["lpips"] <= 1
    assert main(["render", "--params", p, *common, "--out", str(trained / "render")]) == 0
    for name in ("test_sequence.mp4", "orbit.mp4", "canonical.ply", "orbit_expression.ply"):
        assert (trained / "render" / name).stat().st_size > 0
    out = trained / "frame.ply"
    assert main(["export", "--avatar", common[1], "--data", common[3], "--frame", "0", "--out", str(out)]) == 0
    assert len(PlyData.read(str(out))["vertex"]) > 0


def test_ns_train_lists_the_method():
    out = subprocess.run([sys.executable, "-m", "nerfstudio.scripts.train", "eavatar", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "eavatar-subject" in out.stdout and "--pipeline.model.avatar.generator.hidden-dim" in out.stdout
