"""dvc.yaml and params.yaml stay valid and agree with the code that reads them."""

import shutil
import subprocess
import sys
from pathlib import Path


from eavatar.config import apply_overrides, load_params

ROOT = Path(__file__).resolve().parents[1]


def dvc() -> str:
    exe = Path(sys.executable).parent / "dvc"
    return str(exe) if exe.exists() else shutil.which("dvc")


def test_dvc_yaml_is_valid_and_lists_the_stages():
    out = subprocess.run([dvc(), "stage", "list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for stage in ("synthetic", "train", "evaluate", "render"):
        assert stage in out.stdout


def test_params_yaml_sections_are_accepted_by_their_stages():
    from eavatar.pipeline.render import expression_from_names
    from eavatar.data.synthetic import EXPRESSION_LABELS, SyntheticConfig

    params = ROOT / "params.yaml"
    apply_overrides(SyntheticConfig(), load_params(params, "synthetic"), "synthetic")
    expression_from_names(load_params(params, "render")["orbit_expression"], list(EXPRESSION_LABELS), "render.orbit_expression")


def test_video_pipeline_has_one_chain_per_clip_and_its_sections_are_accepted():
    from eavatar.data.video import VideoConfig

    params = ROOT / "params.yaml"
    videos = load_params(params, "videos")
    out = subprocess.run([dvc(), "stage", "list", "video/dvc.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in videos:
        for stage in ("prepare", "train", "evaluate", "render"):
            assert f"video/dvc.yaml:{stage}@{name} " in out.stdout
    apply_overrides(VideoConfig(), load_params(params, "prepare"), "prepare")
    # train_video: tests/pipeline/test_train.py
