"""scripts/setup.sh's GPU step, run in a copy of the repository with a stand-in .venv/bin/python that only logs.

An installed .venv (its stamp current) is assumed: the test runs the "up to date" path, where
CPU machines must do nothing more, and GPU machines install nvcc and build gsplat's kernels.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WHEELS = "nvidia-cuda-nvcc==13.2.* nvidia-cuda-crt==13.2.* nvidia-nvvm==13.2.* nvidia-cuda-runtime==13.2.* nvidia-cuda-cccl"

FAKE_PYTHON = """#!/bin/bash
echo "$*" >> "$LOG"
case "$*" in
  "-c import sys, torch"*) exit "$FAKE_NO_CUDA" ;;
  "-m eavatar.render.cuda_build --wheels") echo "$FAKE_WHEELS" ;;
  "-m pip install"*) exit 0 ;;
  "-m eavatar.render.cuda_build")
    if [ "$FAKE_BUILD_FAILS" = 1 ]; then echo "WARNING: gsplat's CUDA kernels are not available: build failed" >&2; exit 1; fi
    echo "gsplat kernels: built in 1.0 s" ;;
  *) echo "unexpected: $*" >&2; exit 99 ;;
esac
"""


@pytest.fixture
def repo(tmp_path):
    """A repository copy with the stand-in python and a current stamp; tools on PATH but no nvidia-smi."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "scripts/setup.sh"):
        shutil.copy2(REPO / name, root / name)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes() + (root / "scripts/setup.sh").read_bytes()).hexdigest()
    (root / ".venv" / ".eavatar-installed").write_text(digest + "\n")
    (root / "nvidia-cuda-nvcc==13.2.glob-bait").write_text("")  # what an unquoted 'nvidia-cuda-nvcc==13.2.*' would expand to
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "cut", "dirname", "sha256sum"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return root, bin_dir


def run_setup(root: Path, bin_dir: Path, gpu: bool, no_cuda: bool = False, build_fails: bool = False) -> tuple[subprocess.CompletedProcess, list[str]]:
    if gpu:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/bash\nexit 0\n")
        smi.chmod(0o755)
    log = root / "python.log"
    env = {"PATH": str(bin_dir), "LOG": str(log), "FAKE_WHEELS": WHEELS, "FAKE_NO_CUDA": str(int(no_cuda)), "FAKE_BUILD_FAILS": str(int(build_fails))}
    proc = subprocess.run(["bash", "scripts/setup.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    return proc, log.read_text().splitlines() if log.is_file() else []


def test_a_cpu_machine_runs_nothing_more(repo):
    proc, calls = run_setup(*repo, gpu=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "setup: .venv is up to date\n" and calls == []


def test_a_gpu_machine_installs_nvcc_of_torchs_cuda_and_builds(repo):
    proc, calls = run_setup(*repo, gpu=True)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "-c import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)",
        "-m eavatar.render.cuda_build --wheels",
        f"-m pip install -q {WHEELS}",  # the requirements verbatim, not globbed
        "-m eavatar.render.cuda_build",
    ]
    assert "gsplat kernels: built in" in proc.stdout


def test_a_failed_build_warns_and_setup_succeeds(repo):
    proc, calls = run_setup(*repo, gpu=True, build_fails=True)
    assert proc.returncode == 0
    assert "WARNING: gsplat's CUDA kernels are not available" in proc.stderr
    assert "setup: WARNING: continuing without gsplat's CUDA kernels" in proc.stdout


def test_a_driver_that_torch_cannot_use_skips_the_build(repo):
    proc, calls = run_setup(*repo, gpu=True, no_cuda=True)
    assert proc.returncode == 0 and len(calls) == 1
    assert "torch sees no CUDA device" in proc.stdout


def test_the_gpu_step_is_outside_the_stamp():
    """A stale stamp reinstalls, then still runs the GPU step (both paths end in gpu_kernels)."""
    text = (REPO / "scripts/setup.sh").read_text()
    assert text.count("\ngpu_kernels\n") == 1 and text.count("  gpu_kernels\n  exit 0\n") == 1
    assert os.access(REPO / "scripts/setup.sh", os.X_OK) and os.access(REPO / "scripts/gpu_check.sh", os.X_OK)
