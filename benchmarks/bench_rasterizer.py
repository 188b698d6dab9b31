"""Rasteriser timings: forward and forward+backward medians per backend, scene size and resolution.

    python benchmarks/bench_rasterizer.py [--repeats 7] [--baseline-rev REV] [--out benchmarks/results/rasterizer.json]

On CPU, forward + backward is timed twice in one run: the ``"cpu"`` backend that `rasterize`
uses there (compiled loops, eavatar/render/cpu_numba.py) and the ``"reference"`` backend it is
tested against (autograd, eavatar/render/reference.py), so their ratio comes from one machine state.

Scenes are random Gaussians on the surface of a head-sized sphere (radius 0.1) seen from
1 unit, the footprint a trained avatar has in the synthetic subject's cameras. As in a
densified avatar, the Gaussians shrink as their number grows (each covers about 1/N of
the surface), so depth complexity stays at a few layers and cost follows N and the pixel
count. With ``--baseline-rev`` the same scenes are timed on that revision's package in a child
process (benchmarks/baseline.py; without the reference backend) and each row gets its
``baseline_*`` times. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import at_revision, package_path  # noqa: E402

from eavatar.render import Camera, rasterize  # noqa: E402
from eavatar.render.device import default_device  # noqa: E402


RADIUS = 0.1  # head-sized sphere


def scene(n: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g)
    means = RADIUS * means / means.norm(dim=-1, keepdim=True)
    spacing = (4 * torch.pi * RADIUS**2 / n) ** 0.5  # side of the surface patch each Gaussian covers
    s = {
        "means": means,
        "quats": torch.randn(n, 4, generator=g),
        "scales": spacing * (torch.rand(n, 3, generator=g) * 0.4 + 0.3),
        "opacities": torch.rand(n, generator=g) * 0.9 + 0.1,
        "colors": torch.rand(n, 3, generator=g),
    }
    return {k: v.to(device).requires_grad_(True) for k, v in s.items()}


def camera(size: int, device: str) -> Camera:
    c2w = torch.eye(4)
    c2w[2, 3] = 1.0
    return Camera.from_c2w_opengl(c2w, 3.5 * size, 3.5 * size, size / 2, size / 2, size, size).to(device)


def median_seconds(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--gaussians", type=int, nargs="+", default=[5000, 20000, 100000])
    ap.add_argument("--baseline-rev", help="git revision to time the same scenes on, in this run")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/rasterizer.json"))
    ap.add_argument("--as-baseline", action="store_true", help=argparse.SUPPRESS)  # set by baseline.at_revision
    args = ap.parse_args()
    setups = [("cpu", "cpu")] + ([("cuda", "reference"), ("cuda", "gsplat")] if default_device() == "cuda" else [])
    rows = []
    for device, backend in setups:
        for size in args.sizes:
            cam = camera(size, device)
            for n in args.gaussians:
                s = scene(n, device)
                bg = torch.ones(3, device=device)

                def forward():
                    with torch.no_grad():
                        rasterize(**s, camera=cam, background=bg, backend=backend)

                def forward_backward():
                    rasterize(**s, camera=cam, background=bg, backend=backend).rgb.sum().backward()

                row = {
                    "device": device,
                    "backend": backend,
                    "size": size,
                    "gaussians": n,
                    "forward_ms": 1e3 * median_seconds(forward, args.repeats, device),
                    "forward_backward_ms": 1e3 * median_seconds(forward_backward, args.repeats, device),
                }
                line = f"{device:4s} {backend:9s} {size:4d}px {n:6d} gaussians  fwd {row['forward_ms']:8.1f} ms  fwd+bwd {row['forward_backward_ms']:8.1f} ms"
                if device == "cpu" and not args.as_baseline:

                    def reference_backward():
                        rasterize(**s, camera=cam, background=bg, backend="reference").rgb.sum().backward()

                    row["forward_backward_reference_ms"] = 1e3 * median_seconds(reference_backward, args.repeats, device)
                    line += f"  (reference {row['forward_backward_reference_ms']:8.1f} ms)"
                rows.append(row)
                print(line)
    if args.as_baseline:
        print(json.dumps({"rows": rows, "package": package_path()}))
        return
    if args.baseline_rev:
        forwarded = ["--repeats", str(args.repeats), "--sizes", *map(str, args.sizes), "--gaussians", *map(str, args.gaussians)]
        old = {(r["device"], r["backend"], r["size"], r["gaussians"]): r for r in at_revision(args.baseline_rev, __file__, forwarded)["rows"]}
        for row in rows:
            before = old[(row["device"], row["backend"], row["size"], row["gaussians"])]
            row["baseline_forward_ms"], row["baseline_forward_backward_ms"] = before["forward_ms"], before["forward_backward_ms"]
            print(f"{row['device']:4s} {row['backend']:9s} {row['size']:4d}px {row['gaussians']:6d} gaussians  fwd {row['forward_ms']:8.1f} ms (was {before['forward_ms']:8.1f})  fwd+bwd {row['forward_backward_ms']:8.1f} ms (was {before['forward_backward_ms']:8.1f})")
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(), "repeats": args.repeats, "baseline_rev": args.baseline_rev}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
