"""The ablation runner: params per run, reuse of finished runs, and a tiny end-to-end run of the command."""

import json
import shutil

import pytest
import trimesh
import yaml

from eavatar.cli.main import main
from eavatar.data.subject import load_subject
from eavatar.pipeline.ablation import deep_merge, run_params
from eavatar.reports.ablation import markdown_table

ABLATION = {
    "max_num_iterations": 30,
    "seeds": [0, 1],
    "variants": {
        "baseline": {"pipeline": {"model": {"avatar": {"control": {"enabled": False}}, "densify": {"deformation_split": False}}}},
        "control_split": {"pipeline": {"model": {"avatar": {"control": {"enabled": True}}, "densify": {"deformation_split": True}}}},
    },
}


def test_deep_merge_overrides_leaves_and_keeps_siblings():
    base = {"model": {"avatar": {"control": {"enabled": False, "tau": 0.05}}, "loss": {"rgb_weight": 1.0}}, "seed": 1}
    merged = deep_merge(base, {"model": {"avatar": {"control": {"enabled": True}}}})
    assert merged["model"]["avatar"]["control"] == {"enabled": True, "tau": 0.05}
    assert merged["model"]["loss"] == {"rgb_weight": 1.0} and merged["seed"] == 1
    assert base["model"]["avatar"]["control"]["enabled"] is False  # the input is not modified


def test_run_params_share_the_budget_and_take_the_seed():
    train = {"max_num_iterations": 3500, "machine": {"seed": 42}, "pipeline": {"model": {"densify": {"deformation_split": False, "refine_every": 100}}}}
    p = run_params(train, ABLATION, "control_split", 1)
    assert p["max_num_iterations"] == 30 and p["machine"] == {"seed": 1}
    assert p["pipeline"]["model"]["densify"] == {"deformation_split": True, "refine_every": 100}
    assert p["pipeline"]["model"]["avatar"]["control"]["enabled"] is True


@pytest.mark.slow
def test_ablation_end_to_end_writes_the_table_it_prints(tmp_path, capsys):
    from tests.ns.test_pipeline_end_to_end import TINY_PARAMS

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**TINY_PARAMS, "ablation": ABLATION}))
    p = str(tmp_path / "params.yaml")
    assert main(["synthetic", "--params", p, "--out", str(tmp_path / "subject")]) == 0
    # the "full" row's route: a seed mesh as a params override (here a copy of the template, standing in for Stage I)
    seed_mesh = tmp_path / "stage1_mesh.ply"
    shutil.copy(load_subject(tmp_path / "subject").template_mesh, seed_mesh)
    full = deep_merge(ABLATION["variants"]["control_split"], {"pipeline": {"model": {"init_mesh": str(seed_mesh)}}})
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

