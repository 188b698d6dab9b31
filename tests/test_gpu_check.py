"""The GPU check without a GPU: it says so at once, and its parity and section code run on CPU backends."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_without_a_gpu_exits_2_with_one_line():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device even on a GPU machine
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("no GPU: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert time.perf_counter() - t < 60


def test_the_shell_script_without_a_driver_exits_2_before_setup(tmp_path):
    bin_dir = tmp_path / "bin"  # bash and coreutils, no nvidia-smi
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("no GPU: nvidia-smi not found") and proc.stderr.count("\n") == 1, proc.stderr


def test_parity_of_the_cpu_backends_passes(gpu_check):
    """The comparison the GPU check makes of gsplat against "cpu", here of "reference" against "cpu" (both on CPU)."""
    result = gpu_check.parity(("reference", "cpu"), ("cpu", "cpu"), scenes=((300, 40, 32, 3),))
    assert result["pass"] and result["test"] == "reference/cpu" and result["reference"] == "cpu/cpu"
    (scene,) = result["scenes"]
    keys = ["rgb", "alpha", "depth_acc", *(f"d_{k}" for k in gpu_check.GRADIENTS)]
    assert set(keys) <= set(scene) and scene["radii_differ"] == 0
    for key in keys:
        assert scene[key]["pass"] and scene[key]["rel_l1"] < 1e-3, (key, scene[key])


def test_parity_fails_the_quantity_that_differs(gpu_check):
    scene, cam = gpu_check.random_scene(200, 1), gpu_check.front_camera(32, 24)
    ref = gpu_check.backend_outputs(scene, cam, "cpu", "cpu")
    assert ref["d_means2d"].abs().sum() > 0 and ref["d_opacities"].abs().sum() > 0
    off = {**ref, "d_opacities": ref["d_opacities"] * 1.5, "rgb": ref["rgb"] + 0.05}
    report = gpu_check.parity_report(off, ref)
    assert not report["pass"] and not report["d_opacities"]["pass"] and not report["rgb"]["pass"]
    assert report["d_means"]["pass"] and report["alpha"]["pass"]
    assert report["d_opacities"]["rel_l1"] == pytest.approx(0.5, rel=1e-3)


def test_a_failing_section_is_recorded_and_the_next_runs(gpu_check):
    results = {}
    gpu_check.run_section("broken", lambda: {"x": 1 / 0}, results)
    gpu_check.run_section("fine", lambda: {"value": 3}, results)
    assert results["broken"]["ok"] is False and results["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert results["fine"] == {"value": 3, "ok": True, "seconds": results["fine"]["seconds"], **({"peak_gpu_memory_mb": results["fine"]["peak_gpu_memory_mb"]} if torch.cuda.is_available() else {})}


def test_render_timings_of_an_untrained_avatar(gpu_check, tmp_path):
    """The render-FPS row, on the CPU backend with a tiny avatar and subject (the GPU check: 20k and 100k at 512 px on CUDA)."""
    from eavatar.data.subject import load_subject
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

    cfg = SyntheticConfig(resolution=32, n_cameras=2, n_train_sequences=1, n_test_sequences=1, timesteps_per_sequence=3, mesh_subdivisions=3)
    subject = load_subject(generate_synthetic_subject(tmp_path / "s", cfg))
    row = gpu_check.render_timings(subject, 300, repeats=2, device="cpu", size=48, warmup=1)
    assert row["gaussians"] == 300 and row["size_px"] == [48, 48] and row["peak_gpu_memory_mb"] is None
    assert row["frame_ms (generator)"] > 0 and row["rasterize_ms"] > 0 and row["fps"] == pytest.approx(1000 / row["render_ms"], rel=0.02)


def test_the_summary_holds_every_section_and_fails_with_any(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu_check, "no_gpu_reason", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU", raising=False)
    monkeypatch.setattr(gpu_check, "build_section", lambda: {"build_seconds": "cached"})
    monkeypatch.setattr(gpu_check, "parity_section", lambda: {"ok": False, "pass": False})
    monkeypatch.setattr(gpu_check, "train_section", lambda work, seconds, steps: {"seconds_asked": seconds, "steps_asked": steps})
    monkeypatch.setattr(gpu_check, "render_fps_section", lambda work: 1 / 0)
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out), "--work", str(tmp_path / "work"), "--train-seconds", "12"]) == 1
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert json.loads(printed) == summary and summary["gpu"] == "Fake GPU" and summary["ok"] is False
    s = summary["sections"]
    assert list(s) == ["build", "parity", "train", "render_fps"]
    assert s["build"]["ok"] and s["build"]["build_seconds"] == "cached" and not s["parity"]["ok"]
    assert s["train"]["seconds_asked"] == 12.0 and s["train"]["steps_asked"] == 5000
    assert s["render_fps"]["error"] == "ZeroDivisionError: division by zero"
