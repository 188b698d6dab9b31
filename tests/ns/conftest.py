"""A tiny ``ns-train eavatar`` run, trained once per session, for the tests of nerfstudio's own tools."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

#: Three cameras (yaw -60, 0, 60 degrees: one frontal), 48 px, 30 training images.
TINY_SUBJECT = SyntheticConfig(resolution=48, n_cameras=3, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=5, mesh_subdivisions=4)
TINY_STEPS = 12
TINY_TRAIN_FLAGS = [
    "--max-num-iterations", str(TINY_STEPS), "--steps-per-save", "6", "--steps-per-eval-image", "100000",
    "--pipeline.model.avatar.init.num-points", "800", "--pipeline.model.avatar.init.feature-dim", "8",
    "--pipeline.model.avatar.generator.hidden-dim", "32", "--pipeline.model.avatar.generator.num-layers", "2",
    "--pipeline.model.loss.lpips-weight", "0",
]  # fmt: skip


def ns_script(name: str) -> str:
    """A nerfstudio console script of this interpreter's environment (ns-train, ns-viewer, ...)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(f"{path} not found: nerfstudio's scripts are installed with it (bash scripts/setup.sh)")
    return str(path)


@dataclass
class NsRun:
    root: Path  # where the commands ran (relative paths in config.yml start here)
    subject: Path
    config: Path  # <run>/config.yml, what `--load-config` takes
    avatar: Path  # <run>/avatar.pt, what `eavatar export/render --avatar` takes


@pytest.fixture(scope="session")
def ns_run(tmp_path_factory) -> NsRun:
    """``ns-train eavatar`` as a new user runs it: a synthetic subject, a few steps, checkpoints."""
    root = tmp_path_factory.mktemp("ns_run")
    subject = generate_synthetic_subject(root / "subject", TINY_SUBJECT)
    cmd = [ns_script("ns-train"), "eavatar", "--output-dir", "outputs", "--experiment-name", "tiny", "--timestamp", "run",
           "--vis", "tensorboard", *TINY_TRAIN_FLAGS, "eavatar-subject", "--data", str(subject)]  # fmt: skip
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    run = root / "outputs" / "tiny" / "eavatar" / "run"
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (run / "nerfstudio_models" / f"step-{TINY_STEPS - 1:09d}.ckpt").is_file(), sorted(p.name for p in run.rglob("*"))
    return NsRun(root=root, subject=subject, config=run / "config.yml", avatar=run / "avatar.pt")


@pytest.fixture(scope="session")
def loaded(ns_run):
    """(config, pipeline, checkpoint, step) of the run, loaded by nerfstudio's ``eval_setup`` as ns-viewer does."""
    from nerfstudio.utils.eval_utils import eval_setup

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ns_run.root)  # config.yml's paths are relative to where ns-train ran, as in `make demo`
        return eval_setup(ns_run.config, test_mode="test")
