"""Every DVC stage that runs an eavatar command lists, as code deps, exactly the package files its command imports.

The lists are made by scripts/dvc_deps.py from eavatar.provenance.module_closure, the walk the
train stage's resume fingerprint hashes; these tests fail when a stage misses a file its command
imports (or names one it does not), and say how to regenerate.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from eavatar.provenance import module_closure

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("dvc_deps", ROOT / "scripts" / "dvc_deps.py")
dvc_deps = importlib.util.module_from_spec(_spec)
sys.modules["dvc_deps"] = dvc_deps
_spec.loader.exec_module(dvc_deps)

DVC_FILES = dvc_deps.dvc_files()
FIX = "regenerate with: python scripts/dvc_deps.py"


def test_the_three_pipelines_are_checked():
    assert {p.relative_to(ROOT).as_posix() for p in DVC_FILES} >= {"dvc.yaml", "ablation/dvc.yaml", "video/dvc.yaml"}


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_deps_are_exactly_the_import_closure_of_the_command(dvc_file):
    problems = dvc_deps.mismatches(dvc_file)
    assert not problems, "\n".join(problems) + f"\n{FIX}"


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_stage_that_runs_the_package_is_recognised(dvc_file):
    """A stage command that mentions eavatar in a form the walk does not parse would go unchecked."""
    for name, spec in dvc_deps.stage_specs(dvc_file).items():
        if "eavatar" in spec["cmd"]:
            assert dvc_deps.command_words(spec["cmd"]) is not None, f"{dvc_file}:{name}: {spec['cmd']}"


def test_the_train_stage_depends_on_the_loss_the_subject_and_the_params_layer():
    """The files issue #4 found missing, and everything the resume fingerprint hashes."""
    for dvc_file, stage in ((ROOT / "dvc.yaml", "train"), (ROOT / "video" / "dvc.yaml", "train"), (ROOT / "ablation" / "dvc.yaml", "run")):
        declared = dvc_deps.declared_code(dvc_deps.stage_specs(dvc_file)[stage])
        for name in ("metrics/lpips.py", "metrics/image.py", "data/subject.py", "config.py", "pipeline/train.py"):
            assert ROOT / "eavatar" / name in declared, (dvc_file, stage, name)
        assert set(module_closure("eavatar.pipeline.train")) <= declared  # eavatar.pipeline.train.fingerprint's code_hash


def test_the_ablation_run_does_not_depend_on_its_queue_or_report():
    """Editing the report (or the queue) must not re-run twelve trainings."""
    declared = dvc_deps.declared_code(dvc_deps.stage_specs(ROOT / "ablation" / "dvc.yaml")["run"])
    for name in ("reports/ablation.py", "pipeline/ablation_sweep.py", "cli/ablation/report.py", "cli/ablation/queue.py", "tracking/experiments.py"):
        assert ROOT / "eavatar" / name not in declared


def test_commands_map_to_their_cli_modules():
    from eavatar.cli.main import STAGES

    for name, module in STAGES.items():
        assert dvc_deps.command_module([name, "--params", "params.yaml"]) == module.__name__
    assert dvc_deps.command_module(["ablation", "run", "--data", "x"]) == "eavatar.cli.ablation.run_"
    assert dvc_deps.command_module(["ablation", "report"]) == "eavatar.cli.ablation.report"
    assert dvc_deps.command_words("eavatar train --data d") == ["train", "--data", "d"]
    assert dvc_deps.command_words("python -m eavatar.cli.main ablation run --x 1") == ["ablation", "run", "--x", "1"]
    assert dvc_deps.command_words("PYTHONPATH=. eavatar render") == ["render"]
    assert dvc_deps.command_words("python scripts/video_figures.py") is None


STAGE = """stages:
  train:              # a comment that stays
    wdir: {root}
    cmd: eavatar train --params params.yaml --data data/synthetic
    deps:
      - data/synthetic
      - eavatar/cli/train.py   # too short
      - artifacts/geometry/mesh.ply   # kept as written
    params:
      - train
  other:
    wdir: {root}
    cmd: eavatar evaluate --avatar a.pt
    deps:
      - a.pt

  plain:
    cmd: python scripts/video_figures.py
    deps:
      - eavatar/cli/train.py
"""


def test_a_missing_import_is_named_and_the_rewrite_fixes_it(tmp_path):
    path = tmp_path / "dvc.yaml"
    path.write_text(STAGE.format(root=ROOT))
    problems = dvc_deps.mismatches(path)
    assert any(":train: eavatar.cli.train imports" in p and "eavatar/metrics/lpips.py" in p for p in problems)
    assert any(":other: eavatar.cli.evaluate imports" in p for p in problems)
    assert not any(":plain:" in p for p in problems)  # not an eavatar command: left alone
    assert dvc_deps.main([str(path), "--check"]) == 1 and path.read_text() == STAGE.format(root=ROOT)
    assert dvc_deps.main([str(path)]) == 0
    text = path.read_text()
    assert dvc_deps.mismatches(path) == []
    assert "# a comment that stays" in text and "- artifacts/geometry/mesh.ply   # kept as written" in text
    assert text.index("- data/synthetic") < text.index("- eavatar/__init__.py   # code: import closure of eavatar.cli.train")
    assert "      - a.pt\n      - eavatar/__init__.py" in text  # no code deps before: added after the others
    assert "  plain:\n    cmd: python scripts/video_figures.py\n    deps:\n      - eavatar/cli/train.py\n" in text
    assert dvc_deps.main([str(path), "--check"]) == 0  # idempotent


def test_a_folder_stands_for_its_files_only_when_the_command_imports_all_of_them():
    files = set(module_closure("eavatar.cli.train"))
    compact = dvc_deps.compact(files)
    assert ROOT / "eavatar" / "ns" in compact and ROOT / "eavatar" / "metrics" / "lpips.py" in compact
    assert ROOT / "eavatar" / "metrics" not in compact  # train does not import eavatar/metrics/geometry.py
    assert dvc_deps.expand(compact) == files
