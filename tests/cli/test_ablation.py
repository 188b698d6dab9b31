"""The ablation command: params per run, summary statistics, the table, and a tiny end-to-end run."""

import json
import shutil

import numpy as np
import pytest
import trimesh
import yaml

from eavatar.ablation_report import paired_deltas
from eavatar.cli.ablation import deep_merge, markdown_table, run_params, summarise
from eavatar.cli.main import main
from eavatar.data.subject import load_subject

ABLATION = {
    "max_steps": 30,
    "seeds": [0, 1],
    "variants": {
        "baseline": {"model": {"avatar": {"control": {"enabled": False}}, "densify": {"deformation_split": False}}},
        "control_split": {"model": {"avatar": {"control": {"enabled": True}}, "densify": {"deformation_split": True}}},
    },
}


def test_deep_merge_overrides_leaves_and_keeps_siblings():
    base = {"model": {"avatar": {"control": {"enabled": False, "tau": 0.05}}, "loss": {"rgb_weight": 1.0}}, "seed": 1}
    merged = deep_merge(base, {"model": {"avatar": {"control": {"enabled": True}}}})
    assert merged["model"]["avatar"]["control"] == {"enabled": True, "tau": 0.05}
    assert merged["model"]["loss"] == {"rgb_weight": 1.0} and merged["seed"] == 1
    assert base["model"]["avatar"]["control"]["enabled"] is False  # the input is not modified


def test_run_params_share_the_budget_and_take_the_seed():
    train = {"max_steps": 3500, "seed": 42, "model": {"densify": {"deformation_split": False, "refine_every": 100}}}
    p = run_params(train, ABLATION, "control_split", 1)
    assert p["max_steps"] == 30 and p["seed"] == 1
    assert p["model"]["densify"] == {"deformation_split": True, "refine_every": 100}
    assert p["model"]["avatar"]["control"]["enabled"] is True


def test_summary_is_mean_and_sample_std_and_never_averages_a_partial_column():
    rows = [
        {"variant": "a", "seed": 0, "psnr": 20.0, "lpips": 0.1},
        {"variant": "a", "seed": 1, "psnr": 22.0, "lpips": None},
        {"variant": "b", "seed": 0, "psnr": 25.0, "lpips": 0.2},
    ]
    a, b = summarise(rows, ["a", "b"])
    assert a["n"] == 2 and a["psnr_mean"] == 21.0 and a["psnr_std"] == pytest.approx(np.std([20, 22], ddof=1))
    assert a["lpips_mean"] is None  # one seed had no LPIPS: no number rather than a partial mean
    assert b["psnr_std"] == 0.0 and b["ssim_mean"] is None
    table = markdown_table([a, b])
    assert "| a | 2 | 21.00 ± 1.41 |" in table and "**25.00 ± 0.00**" in table and "n/a" in table


def test_paired_deltas_pair_by_seed():
    rows = [
        {"variant": "base", "seed": 0, "psnr": 20.0},
        {"variant": "base", "seed": 1, "psnr": 30.0},
        {"variant": "x", "seed": 1, "psnr": 31.0},
        {"variant": "x", "seed": 0, "psnr": 23.0},
    ]
    mean, std, n = paired_deltas(rows, "x", "base", "psnr")
    assert (mean, n) == (2.0, 2) and std == pytest.approx(np.std([3.0, 1.0], ddof=1))
    assert paired_deltas(rows, "x", "base", "ssim") is None


@pytest.mark.slow
def test_ablation_end_to_end_writes_the_table_it_prints(tmp_path, capsys):
    from tests.ns.test_pipeline_end_to_end import TINY_PARAMS

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**TINY_PARAMS, "ablation": ABLATION}))
    p = str(tmp_path / "params.yaml")
    assert main(["synthetic", "--params", p, "--out", str(tmp_path / "subject")]) == 0
    # the "full" row's route: a seed mesh as a params override (here a copy of the template, standing in for Stage I)
    seed_mesh = tmp_path / "stage1_mesh.ply"
    shutil.copy(load_subject(tmp_path / "subject").template_mesh, seed_mesh)
    full = deep_merge(ABLATION["variants"]["control_split"], {"model": {"init_mesh": str(seed_mesh)}})
    ablation = {**ABLATION, "variants": {**ABLATION["variants"], "full": full}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**TINY_PARAMS, "ablation": ablation}))
    argv = ["ablation", "--params", p, "--data", str(tmp_path / "subject"), "--out", str(tmp_path / "runs")]
    argv += ["--metrics", str(tmp_path / "ablation.json"), "--report", str(tmp_path / "docs" / "ablation.md"), "--figures", str(tmp_path / "docs" / "images")]
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "ablation.json").read_text())
    assert [(r["variant"], r["seed"]) for r in result["runs"]] == [(v, s) for v in ("baseline", "control_split", "full") for s in (0, 1)]
    for r in result["runs"]:
        assert r["psnr"] > 10 and "mouth_psnr" in r and r["flicker"] is not None and r["train_seconds"] > 0
    report = (tmp_path / "docs" / "ablation.md").read_text()
    table = markdown_table(result["summary"])
    assert table in report and table in printed
    for name in ("ablation_mouth.png", "ablation_training.png"):
        assert (tmp_path / "docs" / "images" / name).stat().st_size > 0
    assert main(argv) == 0  # a second run reuses every finished run
    assert capsys.readouterr().out.count("reusing") == 6
    mesh = trimesh.load(seed_mesh, force="mesh", process=False)
    mesh.apply_scale(1.01)
    mesh.export(seed_mesh)  # same path, other content
    assert main(argv) == 0  # only the runs seeded from that mesh train again
    assert capsys.readouterr().out.count("reusing") == 4
