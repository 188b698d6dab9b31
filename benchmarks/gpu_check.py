"""The GPU check: gsplat's kernels, their parity with the CPU rasteriser, training and render speed on one GPU.

    bash scripts/gpu_check.sh [--train-seconds 150]   # setup (installs nvcc, builds gsplat's kernels), then this
    python benchmarks/gpu_check.py [--train-seconds 150] [--work /tmp/eavatar-gpu-check] [--out benchmarks/results/gpu_check.json]

Without a CUDA device it exits at once with status 2 and one line, ``no GPU: ...``. On a GPU it
prints one JSON summary (also written to ``--out``); every section catches its own failure and
records it there instead of stopping the others:

- ``build``: gsplat's kernels (eavatar/render/cuda_build.py): the build's seconds, or "cached".
- ``parity``: gsplat on CUDA against the compiled CPU backend ("cpu", CPU tensors) on the same
  random scenes: image, alpha, accumulated depth and the gradient of one loss of all three with
  respect to means, quats, scales, opacities, colors and means2d (the screen-space gradient
  densification reads), as max abs / relative errors, each passed or failed at ``TOLERANCES``.
- ``train``: the synthetic subject at 512 px (fewer frames than params.yaml's) trained for a
  wall-clock budget in a child process: train PSNR against wall time, steps per second,
  held-out (test split) PSNR of the result.
- ``render_fps``: ``HeadAvatar.render`` (the generator MLPs, then rasterize) at 512 px of an
  untrained avatar of 20,000 and 100,000 Gaussians: median over repeats, CUDA synchronised.
- peak GPU memory of each section (``torch.cuda.max_memory_allocated``).

Exit status 0 when every section passed, 1 otherwise. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
NO_GPU_EXIT = 2
SIZE = 512
GRADIENTS = ("means", "quats", "scales", "opacities", "colors", "means2d")
#: Pass thresholds of gsplat against the CPU backend. Values: gsplat also lets a Gaussian reach the
#: rest of its 16 px tiles, past our 3-sigma box, where alpha < 0.011 x opacity (tests/render/
#: test_rasterize.py::test_backends_agree_on_cuda), so a few pixels differ by up to 2e-2 and the
#: mean by far less. Gradients: relative, max |a - b| / max |b| and sum |a - b| / sum |b|.
TOLERANCES = {
    "values": {"max_abs": 2e-2, "mean_abs": 1e-3},
    "gradients": {"rel_max": 0.1, "rel_l1": 0.02},
}
#: Parity scenes: (Gaussians, width, height, seed).
PARITY_SCENES = ((2000, 128, 96, 7), (20000, 256, 256, 8))
#: The 512 px subject: 4 + 1 cameras, 3 sequences of 10 instants (params.yaml's has 6 + 1 cameras,
#: 8 of 20 at 128 px), one ray per pixel: generated in about a minute on one CPU core.
SUBJECT = dict(resolution=SIZE, n_cameras=4, n_heldout_cameras=1, n_train_sequences=2, n_test_sequences=1, timesteps_per_sequence=10, supersampling=1)


# --- parity -------------------------------------------------------------------------------------


def random_scene(n: int, seed: int) -> dict[str, torch.Tensor]:
    """N random Gaussians around the origin, sized for a camera 1 unit away (as tests/render's)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * 0.08,
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * 0.02 + 0.004,
        "opacities": torch.rand(n, generator=g) * 0.8 + 0.1,
        "colors": torch.rand(n, 3, generator=g),
    }


def front_camera(width: int, height: int):
    """Looks at the origin from +z at distance 1, principal point slightly off-centre."""
    from eavatar.render import Camera

    c2w = torch.eye(4)
    c2w[2, 3] = 1.0
    return Camera.from_c2w_opengl(c2w, 1.3 * width, 1.3 * width, 0.5 * width + 0.7, 0.5 * height - 0.4, width, height)


def backend_outputs(scene: dict, camera, backend: str, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Render ``scene`` with ``backend`` on ``device``; values and the gradients of one fixed random
    weighting of image, alpha and accumulated depth, all as float64 on the CPU."""
    from eavatar.render import rasterize

    g = torch.Generator().manual_seed(seed)
    h, w = camera.height, camera.width
    weights = [torch.rand(h, w, c, generator=g).to(device) for c in (3, 1, 1)]
    leaves = {k: v.detach().to(device).clone().requires_grad_(True) for k, v in scene.items()}
    out = rasterize(**leaves, camera=camera.to(device), background=torch.ones(3, device=device), backend=backend, eps2d=0.1)
    depth_acc = out.depth * out.alpha  # expected depth x alpha: no 1/alpha at the silhouette
    loss = (out.rgb * weights[0]).sum() + (out.alpha * weights[1]).sum() + (depth_acc * weights[2]).sum()
    loss.backward()
    res = {"rgb": out.rgb, "alpha": out.alpha, "depth_acc": depth_acc}
    res.update({f"d_{k}": leaves[k].grad for k in GRADIENTS if k != "means2d"})
    res["d_means2d"] = out.means2d.grad[0]
    res["radii"] = out.radii[0]
    return {k: v.detach().cpu().double() for k, v in res.items()}


def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Errors of ``a`` against the reference ``b``: max and mean absolute, and relative to ``b``'s scale."""
    diff = (a - b).abs()
    max_b, sum_b = float(b.abs().max()), float(b.abs().sum())
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "rel_max": float(diff.max()) / max_b if max_b > 0 else (0.0 if float(diff.max()) == 0 else float("inf")),
        "rel_l1": float(diff.sum()) / sum_b if sum_b > 0 else (0.0 if float(diff.sum()) == 0 else float("inf")),
    }


def parity_report(test: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], tolerances: dict = TOLERANCES) -> dict:
    """Every quantity of :func:`backend_outputs` compared, each with ``pass`` at ``tolerances``; ``pass``: all."""
    report: dict = {}
    for key in ("rgb", "alpha", "depth_acc", *(f"d_{k}" for k in GRADIENTS)):
        errors = compare(test[key], ref[key])
        tol = tolerances["gradients" if key.startswith("d_") else "values"]
        report[key] = {**{k: float(f"{v:.3g}") for k, v in errors.items()}, "pass": all(errors[k] <= t for k, t in tol.items())}
    report["radii_differ"] = int((test["radii"] != ref["radii"]).sum())
    report["pass"] = all(v["pass"] for v in report.values() if isinstance(v, dict))
    return report


def parity(test: tuple[str, str], ref: tuple[str, str], scenes=PARITY_SCENES, tolerances: dict = TOLERANCES) -> dict:
    """(backend, device) ``test`` against ``ref`` on each scene: {"scenes": [...], "pass": bool}."""
    rows = []
    for n, w, h, seed in scenes:
        scene, cam = random_scene(n, seed), front_camera(w, h)
        t = time.perf_counter()
        report = parity_report(backend_outputs(scene, cam, *test), backend_outputs(scene, cam, *ref), tolerances)
        rows.append({"gaussians": n, "size": [w, h], "seed": seed, **report, "seconds": round(time.perf_counter() - t, 2)})
    return {"test": "/".join(test), "reference": "/".join(ref), "tolerances": tolerances, "scenes": rows, "pass": all(r["pass"] for r in rows)}


# --- sections -----------------------------------------------------------------------------------


def run_section(name: str, fn: Callable[[], dict], results: dict) -> None:
    """``results[name]`` = fn()'s dict with ``ok``, ``seconds`` and the section's peak GPU memory; a
    failure is recorded there (type, message, last traceback lines), never raised."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    try:
        out = fn()
        out.setdefault("ok", True)
    except BaseException as e:  # noqa: BLE001 - one section's failure, even a timeout, must not stop the others
        if isinstance(e, KeyboardInterrupt):
            raise
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc().splitlines()[-6:]}
    out["seconds"] = round(time.perf_counter() - t, 1)
    if cuda:
        out.setdefault("peak_gpu_memory_mb", round(torch.cuda.max_memory_allocated() / 2**20, 1))
    results[name] = out
    print(f"gpu_check: {name}: {'ok' if out['ok'] else 'FAILED'} ({out['seconds']} s)", file=sys.stderr, flush=True)


def build_section() -> dict:
    from eavatar.render.cuda_build import build_gsplat_kernels, kernel_cache_dir

    s = build_gsplat_kernels()
    out = {"ok": s.ok, "reason": s.reason, "cuda_home": s.cuda_home}
    if s.ok:
        out["build_seconds"] = "cached" if s.cached else s.seconds
        out["load_seconds" if s.cached else "build_and_test_seconds"] = s.seconds
        out["cache"] = str(kernel_cache_dir())
    return out


def parity_section() -> dict:
    result = parity(("gsplat", "cuda"), ("cpu", "cpu"))
    result["ok"] = result["pass"]
    return result


def subject_for(work: Path) -> tuple[Path, float | None]:
    """The 512 px subject under ``work`` (generated once; None seconds when reused)."""
    from eavatar.data.synthetic import SyntheticConfig, generate_synthetic_subject

    path, stamp = work / "subject-512", work / "subject-512.json"
    if (path / "transforms.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == SUBJECT:
        return path, None
    t = time.perf_counter()
    generate_synthetic_subject(path, SyntheticConfig(**SUBJECT))
    stamp.write_text(json.dumps(SUBJECT))
    return path, round(time.perf_counter() - t, 1)


def train_section(work: Path, seconds: float, max_steps: int) -> dict:
    subject, generated = subject_for(work)
    out_dir = work / "train"
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run: the trainer would resume an earlier one's checkpoint
    result_file = out_dir / "gpu_check_train.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--train-child", str(subject), str(out_dir), str(seconds), str(max_steps)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}  # not the user's ./mlflow.db
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 420)
    (work / "train.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not result_file.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        return {"ok": False, "error": f"training exited with status {proc.returncode} (log: {work / 'train.log'})", "log_tail": tail}
    return {"subject": {**SUBJECT, "path": str(subject), "generation_seconds": generated if generated is not None else "reused"}, **json.loads(result_file.read_text())}


def train_child(subject: Path, out: Path, seconds: float, max_steps: int) -> None:
    """The training run of ``train_section``, in its own process: stops at ``seconds`` of training."""
    from eavatar.avatar.checkpoint import load_avatar
    from eavatar.avatar.drive import render_subject_frame
    from eavatar.data.frames import load_ground_truth
    from eavatar.data.subject import load_subject
    from eavatar.metrics.image import psnr
    from eavatar.ns.trainer import EAvatarTrainer
    from eavatar.pipeline.train import train, training_config
    from eavatar.render.rasterize import choose_backend

    device = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: only to try this code without a GPU
    curve: list[dict] = []
    clock: dict[str, float] = {}
    original = EAvatarTrainer.train_iteration

    def timed_iteration(self, step):
        clock.setdefault("start", time.perf_counter())
        loss, loss_dict, metrics = original(self, step)
        if step % 25 == 0:
            sync()
            curve.append({"step": step, "wall_s": round(time.perf_counter() - clock["start"], 2), "train_psnr": round(float(metrics.get("psnr", float("nan"))), 2)})
        if time.perf_counter() - clock["start"] > seconds:
            self.stop_training = True  # nerfstudio's loop stops before the next step, then exports the avatar
        clock["steps"] = step + 1
        clock["end"] = time.perf_counter()
        return loss, loss_dict, metrics

    EAvatarTrainer.train_iteration = timed_iteration
    overrides = {"max_num_iterations": max_steps, "steps_per_eval_image": 10**9, "steps_per_save": 10**9, "pipeline": {"model": {"init_mesh": ""}}}
    cfg = training_config(overrides, subject, out, "gpu_check")
    cfg.mlflow_experiment = "gpu-check"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    final = train(cfg, subject, out)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    wall = clock["end"] - clock["start"]
    avatar, info = load_avatar(final)
    avatar = avatar.to(device).eval()
    s = load_subject(subject)
    bg = torch.tensor(info.background, device=device)
    test = s.split("test")
    frames = test[:: max(1, len(test) // 10)]
    preds = torch.stack([render_subject_frame(avatar, s, int(i), bg).rgb.clamp(0, 1).cpu() for i in frames])
    gts = torch.stack([load_ground_truth(s, int(i), bg.cpu()) for i in frames])
    result = {
        "backend": choose_backend(torch.device(device)),
        "steps": clock["steps"],
        "train_seconds": round(wall, 1),
        "steps_per_second": round(clock["steps"] / wall, 2),
        "psnr_vs_wall_time": curve,
        "test_psnr": round(float(psnr(preds, gts)), 2),
        "test_frames": len(frames),
        "gaussians": len(avatar.canonical),
        "peak_gpu_memory_mb": round(peak, 1) if peak is not None else None,
    }
    (out / "gpu_check_train.json").write_text(json.dumps(result, indent=2))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``fn`` in ms, the GPU's queue drained before and after each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def render_timings(subject, n: int, repeats: int, device: str = "cuda", size: int = SIZE, warmup: int = 3) -> dict:
    """``HeadAvatar.render`` at ``size`` px of an untrained avatar of ``n`` Gaussians, and its two stages, in ms."""
    from eavatar.avatar.drive import orbit_camera
    from eavatar.ui.quickstart import avatar_or_untrained

    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    loaded = avatar_or_untrained(Path("/nonexistent/avatar.pt"), subject, params=REPO / "params.yaml", num_points=n)
    avatar = loaded.avatar.to(device).eval()
    pose = loaded.reference_head_pose.to(device)
    cam = orbit_camera(avatar, subject, pose, 0.0, 0.0, size)
    expression = torch.full((avatar.d_exp,), 0.3, device=device)
    bg = torch.ones(3, device=device)
    with torch.inference_mode():
        g = avatar.frame(expression, pose)
        render_ms = median_ms(lambda: avatar.render(cam, expression, pose, bg), repeats, warmup)
        frame_ms = median_ms(lambda: avatar.frame(expression, pose), repeats, warmup)
        raster_ms = median_ms(lambda: avatar.rasterize(g, cam, bg), repeats, warmup)
    return {
        "gaussians": len(avatar.canonical),
        "size_px": [cam.width, cam.height],
        "render_ms": round(render_ms, 2),
        "fps": round(1000 / render_ms, 1),
        "frame_ms (generator)": round(frame_ms, 2),
        "rasterize_ms": round(raster_ms, 2),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
    }


def render_fps_section(work: Path, sizes=(20_000, 100_000), repeats: int = 20) -> dict:
    from eavatar.render.rasterize import choose_backend
    from eavatar.ui.quickstart import subject_or_small

    subject, note = subject_or_small(work / "subject-512")  # the training's subject, else a small one (only its cameras are used)
    rows = [render_timings(subject, n, repeats) for n in sizes]
    return {"backend": choose_backend(torch.device("cuda")), "subject": note, "avatar": "untrained (params.yaml architecture)", "repeats": repeats, "rows": rows}


def no_gpu_reason() -> str | None:
    """Why this machine cannot run the check, or None."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device; run this on a machine with an NVIDIA GPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-seconds", type=float, default=150.0, help="wall-clock budget of the training run")
    ap.add_argument("--train-steps", type=int, default=5000, help="the run's length (learning-rate schedules); the budget usually stops it first")
    ap.add_argument("--work", type=Path, default=Path("/tmp/eavatar-gpu-check"), help="subject, training run and logs (kept: a rerun reuses the subject)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu_check.json")
    ap.add_argument("--train-child", nargs=4, metavar=("SUBJECT", "OUT", "SECONDS", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.train_child:
        subject, out, seconds, steps = args.train_child
        train_child(Path(subject), Path(out), float(seconds), int(steps))
        return 0
    reason = no_gpu_reason()
    if reason:
        print(f"no GPU: {reason}", file=sys.stderr)
        return NO_GPU_EXIT
    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    sections: dict = {}
    run_section("build", build_section, sections)
    run_section("parity", parity_section, sections)
    run_section("train", lambda: train_section(args.work, args.train_seconds, args.train_steps), sections)
    run_section("render_fps", lambda: render_fps_section(args.work), sections)
    import gsplat

    summary = {
        "ok": all(s["ok"] for s in sections.values()),
        "gpu": torch.cuda.get_device_name(0),
        "sections": sections,
        "total_seconds": round(time.perf_counter() - t, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gsplat": gsplat.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
