"""params.yaml's prior/geometry sections, the DVC stages and the CLI errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eavatar.cli.main import build_parser, main
from eavatar.config import apply_overrides, load_params
from eavatar.geometry.prior import PriorConfig
from eavatar.geometry.stage1 import StageIConfig

ROOT = Path(__file__).resolve().parents[2]


def test_params_sections_are_accepted():
    prior = apply_overrides(PriorConfig(), load_params(ROOT / "params.yaml", "prior"), "prior")
    assert prior.provider in ("visual_hull", "file", "generator")
    geometry = load_params(ROOT / "params.yaml", "geometry")
    apply_overrides(StageIConfig(), {k: v for k, v in geometry.items() if k not in ("use_prior", "metrics_frames")}, "geometry")


def test_dvc_has_prior_and_geometry_stages_before_train():
    dvc = Path(sys.executable).parent / "dvc"
    out = subprocess.run([str(dvc) if dvc.exists() else shutil.which("dvc"), "stage", "list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert names.index("prior") < names.index("geometry") < names.index("train")


def test_cli_registers_the_stages():
    assert build_parser().parse_args(["train", "--section", "train_video"]).section == "train_video"
    assert build_parser().parse_args(["prior"]).stage == "prior"
    assert build_parser().parse_args(["geometry", "--avatar", "a.pt"]).avatar == Path("a.pt")


def test_prior_cli_missing_file_names_params_field_and_fix(tmp_path, tiny_subject):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prior": {"provider": "file", "mesh_file": str(tmp_path / "gen.glb")}}))
    with pytest.raises(SystemExit, match=r"params\.yaml: prior\.mesh_file: file not found: .*gen\.glb"):
        main(["prior", "--params", str(params), "--data", str(tiny_subject.root), "--out", str(tmp_path / "out")])


def test_prior_cli_unknown_key_is_named(tmp_path, tiny_subject):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prior": {"provder": "file"}}))
    with pytest.raises(SystemExit, match=r"params\.yaml:prior: unknown key --provder \(did you mean --provider\?\)"):
        main(["prior", "--params", str(params), "--data", str(tiny_subject.root), "--out", str(tmp_path / "out")])


def test_geometry_cli_missing_prior_says_how_to_make_it(tmp_path, tiny_subject):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"geometry": {"iterations": 1}}))
    with pytest.raises(SystemExit, match=r"--prior.*eavatar prior.*file not found.*use_prior: false"):
        main(["geometry", "--params", str(params), "--data", str(tiny_subject.root), "--prior", str(tmp_path / "none.ply"), "--out", str(tmp_path / "g")])
