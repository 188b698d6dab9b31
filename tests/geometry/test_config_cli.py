"""params.yaml's prior/geometry sections, the DVC stages and the CLI errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eavatar.cli.main import build_parser, main
from eavatar.cli.params import apply_overrides, load_params
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
    args = build_parser().parse_args(["train", "--init-mesh", "m.ply"])
    assert args.init_mesh == Path("m.ply")
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
    with pytest.raises(SystemExit, match=r"prior\.provder: unknown parameter"):
        main(["prior", "--params", str(params), "--data", str(tiny_subject.root), "--out", str(tmp_path / "out")])


def test_geometry_cli_missing_prior_says_how_to_make_it(tmp_path, tiny_subject):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"geometry": {"iterations": 1}}))
    with pytest.raises(SystemExit, match=r"--prior.*eavatar prior.*file not found.*use_prior: false"):
        main(["geometry", "--params", str(params), "--data", str(tiny_subject.root), "--prior", str(tmp_path / "none.ply"), "--out", str(tmp_path / "g")])


def test_init_mesh_is_a_train_model_parameter():
    """The ablation's "+prior" variant can seed from the Stage I mesh with `model: {init_mesh: ...}`."""
    from eavatar.cli.train import build_config

    cfg = build_config({"model": {"init_mesh": "artifacts/geometry/mesh.ply"}}, Path("d"), Path("o"), "train")
    assert cfg.pipeline.model.init_mesh == "artifacts/geometry/mesh.ply"


def test_seed_mesh_is_fingerprinted_and_a_missing_one_named(tmp_path):
    """A different Stage I mesh at the same path restarts a resumable run; a missing one says where it was set."""
    from eavatar.cli.train import fingerprint, with_seed_mesh

    data = tmp_path / "transforms.json"
    data.write_text("{}")
    mesh = tmp_path / "mesh.ply"
    mesh.write_bytes(b"first")
    first = fingerprint(with_seed_mesh({"max_steps": 1}, str(mesh), "x"), data)
    mesh.write_bytes(b"second")
    assert fingerprint(with_seed_mesh({"max_steps": 1}, str(mesh), "x"), data) != first
    assert with_seed_mesh({"max_steps": 1}, "", "x") == {"max_steps": 1}
    with pytest.raises(SystemExit, match=r"params\.yaml:train\.model\.init_mesh: .*none\.ply: file not found.*eavatar geometry"):
        with_seed_mesh({}, str(tmp_path / "none.ply"), "params.yaml:train.model.init_mesh")


def test_training_code_is_part_of_the_resume_fingerprint(tmp_path, monkeypatch):
    """A changed model or rasteriser must train again, not resume the old code's finished run."""
    import eavatar.cli.train as train

    for package in train.TRAINING_CODE:
        (tmp_path / package).mkdir()
        (tmp_path / package / "m.py").write_text("x = 1\n")
    (tmp_path / "cli.py").write_text("not training code\n")
    first = train.training_code_hash(tmp_path)
    (tmp_path / "cli.py").write_text("changed\n")
    assert train.training_code_hash(tmp_path) == first
    (tmp_path / "render" / "m.py").write_text("x = 2\n")
    changed = train.training_code_hash(tmp_path)
    assert changed != first
    data = tmp_path / "transforms.json"
    data.write_text("{}")
    monkeypatch.setattr(train, "training_code_hash", lambda: first)
    before = train.fingerprint({"max_steps": 1}, data)
    monkeypatch.setattr(train, "training_code_hash", lambda: changed)
    assert train.fingerprint({"max_steps": 1}, data) != before
