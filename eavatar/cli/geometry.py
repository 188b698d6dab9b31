"""Stage I (params.yaml `geometry`): fit the SDF head mesh to the subject with the prior; Chamfer to ground truth."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from eavatar.cli.params import apply_overrides, load_params

CLI_KEYS = ("use_prior", "metrics_frames")  # geometry keys read here, not by StageIConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (section: geometry)")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="subject folder")
    p.add_argument("--prior", type=Path, default=Path("artifacts/prior/prior.ply"), help="head-space prior mesh (eavatar prior)")
    p.add_argument("--out", type=Path, default=Path("artifacts/geometry"), help="folder for mesh.ply, geometry.pt, history.csv")
    p.add_argument("--metrics", type=Path, default=Path("metrics/geometry.json"), help="geometry metrics JSON (dvc metrics)")
    p.add_argument("--avatar", type=Path, default=None, help="also measure this trained avatar's Gaussian centres")


def geometry_metrics(model, subject, limit: int) -> dict:
    """Stage I mesh against the ground-truth meshes of test frames (per expression), and the canonical mesh against the template."""
    from eavatar.geometry.stage1 import canonical_mesh, expression_mesh
    from eavatar.metrics.geometry import distinct_frames, dominant_expression, mesh_metrics, summarise
    import trimesh

    frames = distinct_frames(subject, "test", limit)
    if not frames:
        return {"note": f"{subject.transforms_path}: no frames with mesh_path in the test split: nothing to compare"}
    rows = []
    for i in frames:
        pred = expression_mesh(model, torch.tensor(subject.expressions[i]), torch.tensor(subject.head_poses[i], dtype=torch.float32))
        gt = trimesh.load(subject.mesh_paths[i], process=False)
        rows.append({"frame": i, "expression": dominant_expression(subject.expressions[i], subject.expression_labels), **mesh_metrics(pred, gt)})
    out = {"test": {**summarise(rows, subject.expression_labels), "frames": rows}}
    if subject.template_mesh is not None:
        out["canonical_vs_template"] = mesh_metrics(canonical_mesh(model), trimesh.load(subject.template_mesh, process=False))
    return out


def run(args: argparse.Namespace) -> int:
    from eavatar.data.subject import load_subject
    from eavatar.geometry.prior import PriorError, load_prior_mesh
    from eavatar.geometry.stage1 import StageIConfig, canonical_mesh, save_geometry, train_stage1
    from eavatar.metrics.geometry import mesh_metrics
    from eavatar.tracking.mlflow_run import TrackedRun

    where = f"{args.params}:geometry"
    params = load_params(args.params, "geometry")
    cfg = apply_overrides(StageIConfig(), {k: v for k, v in params.items() if k not in CLI_KEYS}, where)
    use_prior = bool(params.get("use_prior", True))
    subject = load_subject(args.data)
    try:
        prior = load_prior_mesh(args.prior, "--prior (the output of `eavatar prior`)") if use_prior else None
    except PriorError as err:
        raise SystemExit(f"{err}; or set geometry.use_prior: false in {args.params}") from None
    result = train_stage1(subject, cfg, prior)
    args.out.mkdir(parents=True, exist_ok=True)
    mesh_path = args.out / "mesh.ply"
    canonical_mesh(result.model).export(mesh_path)
    save_geometry(args.out / "geometry.pt", result.model, cfg)
    with open(args.out / "history.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in result.history for k in row))
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(result.history)
    summary = {
        "use_prior": use_prior,
        "prior_terms": {"paper": cfg.prior_loss.paper, "surface": cfg.prior_loss.surface} if use_prior else None,
        "iterations": cfg.iterations,
        "seconds": round(result.seconds, 1),
        "final_loss": result.history[-1]["loss"],
        "lmk": "used" if result.landmarks_used else "skipped: the subject has no 3D landmarks",
        **geometry_metrics(result.model, subject, int(params.get("metrics_frames", 16))),
    }
    if prior is not None and subject.template_mesh is not None:
        import trimesh

        summary["prior_vs_template"] = mesh_metrics(prior, trimesh.load(subject.template_mesh, process=False))
    if args.avatar is not None:
        from eavatar.avatar.checkpoint import load_avatar
        from eavatar.metrics.geometry import distinct_frames, gaussian_geometry_metrics

        avatar, _ = load_avatar(args.avatar, "cpu")
        summary["gaussians"] = gaussian_geometry_metrics(avatar, subject, distinct_frames(subject, "test", int(params.get("metrics_frames", 16))))
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(summary, indent=2))
    with TrackedRun(run_name="geometry", tags={"stage": "geometry", "use_prior": str(use_prior)}) as tracked:
        tracked.log_params(params)
        for row in result.history[:: max(1, cfg.log_every)]:
            tracked.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])
        test = summary.get("test", {})
        tracked.log_metrics({f"test/{k}": v for k, v in test.items() if isinstance(v, float)})
        tracked.log_artifacts([mesh_path, args.out / "history.csv", args.metrics] + ([args.prior] if prior is not None else []), artifact_path="geometry")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("test", "gaussians")} | {"test_chamfer": summary.get("test", {}).get("chamfer")}, indent=2))
    print(f"wrote {mesh_path}")
    return 0
