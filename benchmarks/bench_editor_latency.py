"""Slider-to-image latency of the expression editor (notebook 02): median and p90 over slider moves.

    python benchmarks/bench_editor_latency.py [--moves 40] [--size 256] [--avatar A] [--baseline-rev REV] [--out benchmarks/results/editor_latency.json]

One "move" is what a slider's observer does: set the coefficient, re-render, encode the PNG
the image widget shows. The avatar is ``--avatar`` (default artifacts/train/avatar.pt) when it
exists, else an untrained avatar with the params.yaml architecture seeded with 12,000 Gaussians
(the size the demo run ends at); the output says which. Also timed: the avatar's frame (the
generator, every input changed), the rasteriser alone, the PNG encoding. With ``--baseline-rev``
the same moves run on that revision's package in a child process (benchmarks/baseline.py) and
the ratios are reported. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import at_revision, package_path, ratio, report  # noqa: E402

from eavatar.ui import editor as editor_module  # noqa: E402
from eavatar.ui.editor import ExpressionEditor, build_widget, head_pose_matrix, png_bytes  # noqa: E402
from eavatar.ui.quickstart import avatar_or_untrained, subject_or_small  # noqa: E402


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1), "n": len(ms)}


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


def slider_moves(editor: ExpressionEditor, moves: int) -> dict[str, dict]:
    """Milliseconds per slider change through the real widget observer (sweeps every coefficient).

    Wall time is the latency; CPU time of this process is what the move costs, which is the
    latency on cores nobody else uses (with one thread) when other processes share them.
    """
    _, controls = build_widget(editor, out_dir="/tmp/eavatar-bench")
    rng = np.random.default_rng(0)
    wall, cpu = [], []
    for m in range(moves + 1):
        slider = controls[editor.labels[m % len(editor.labels)]]
        value = round(float(rng.uniform(0, 1)), 2)
        t, c = time.perf_counter(), time.process_time()
        slider.value = value if value != slider.value else round(1 - value, 2)
        if m:  # the first move warms up
            wall.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
    return {"wall": percentiles(wall), "cpu_time": percentiles(cpu)}


def stages(editor: ExpressionEditor, repeats: int) -> dict[str, dict]:
    from eavatar.avatar.drive import orbit_camera

    avatar, s = editor.avatar, editor.state
    pose = head_pose_matrix(editor.reference, s.yaw, s.pitch)
    camera = orbit_camera(avatar, editor.subject, editor.reference, 0.0, 0.0, editor.size)
    threads = getattr(editor_module, "cpu_threads", None) or editor_module.torch_threads  # (torch_threads: baseline revisions)
    with torch.inference_mode(), threads(editor.threads):
        g = avatar.frame(s.expression, pose)
        image = editor.render()
        return {
            "frame (generator)": percentiles(timed(lambda: avatar.frame(s.expression, pose), repeats)),
            "rasterize": percentiles(timed(lambda: avatar.rasterize(g, camera, editor.background), repeats)),
            "png": percentiles(timed(lambda: png_bytes(image), repeats)),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moves", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="compute threads while rendering (the editor's threads), one run each")
    ap.add_argument("--avatar", type=Path, default=Path("artifacts/train/avatar.pt"))
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--baseline-rev", help="git revision to time the same moves on, in this run")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/editor_latency.json"))
    ap.add_argument("--as-baseline", action="store_true", help=argparse.SUPPRESS)  # set by baseline.at_revision
    args = ap.parse_args()
    subject, subject_note = subject_or_small(args.data)
    loaded = avatar_or_untrained(args.avatar, subject, num_points=None if args.avatar.is_file() else 12_000)
    print(subject_note, "\n" + loaded.note, sep="", file=sys.stderr)
    editor = ExpressionEditor(loaded.avatar, subject, loaded.reference_head_pose, loaded.background, size=args.size)
    load_before = os.getloadavg()[0]
    runs = {}
    for threads in args.threads:
        editor.threads = threads
        runs[f"threads={threads}"] = {"slider_move": slider_moves(editor, args.moves), "stages": stages(editor, max(5, args.moves // 4))}
    if args.as_baseline:
        print(json.dumps({**runs, "package": package_path()}))
        return
    result = {
        "avatar": loaded.note,
        "trained": loaded.trained,
        "gaussians": len(loaded.avatar.canonical),
        "size_px": args.size,
        **runs,
    }
    if args.baseline_rev:
        forwarded = ["--moves", str(args.moves), "--size", str(args.size), "--threads", *map(str, args.threads), "--avatar", str(args.avatar), "--data", str(args.data)]
        baseline = at_revision(args.baseline_rev, __file__, forwarded)
        result["baseline"] = {"revision": args.baseline_rev, **{k: v for k, v in baseline.items() if k.startswith("threads=")}}
        result["speedup"] = {
            key: ratio(baseline[key]["slider_move"]["wall"]["median_ms"], runs[key]["slider_move"]["wall"]["median_ms"]) for key in runs
        }
    result["meta"] = {"torch": torch.__version__}
    report(result, args.out, load_before)


if __name__ == "__main__":
    main()
