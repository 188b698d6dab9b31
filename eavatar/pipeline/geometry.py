"""The geometry stage (Stage I): the SDF head mesh fitted with the prior; Chamfer to ground-truth meshes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from eavatar.config import apply_overrides, load_params

STAGE_KEYS = ("use_prior", "metrics_frames")  # geometry keys read here, not by StageIConfig


def geometry_metrics(model, subject, limit: int) -> dict:
    """Stage I mesh against the ground-truth meshes of test frames (per expression), and the canonical mesh against the template."""
    import trimesh

    from eavatar.geometry.stage1 import canonical_mesh, expression_mesh
    from eavatar.metrics.geometry import distinct_frames, dominant_expression, mesh_metrics, summarise

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


def geometry_stage(params_file: Path, data: Path, prior_path: Path, out: Path, metrics: Path, avatar: Path | None = None) -> dict:
    """``eavatar geometry``: mesh.ply, geometry.pt and history.csv under ``out``, the metrics JSON, an MLflow run.

    ``avatar``: also measure that trained avatar's Gaussian centres. Returns the summary.
    """
    import trimesh

    from eavatar.data.subject import load_subject
    from eavatar.geometry.prior import PriorError, load_prior_mesh
    from eavatar.geometry.stage1 import StageIConfig, canonical_mesh, save_geometry, train_stage1
    from eavatar.metrics.geometry import mesh_metrics
    from eavatar.tracking.history import write_history
    from eavatar.tracking.mlflow_run import TrackedRun

    params = load_params(params_file, "geometry")
    cfg = apply_overrides(StageIConfig(), {k: v for k, v in params.items() if k not in STAGE_KEYS}, f"{params_file}:geometry")
    use_prior = bool(params.get("use_prior", True))
    frames = int(params.get("metrics_frames", 16))
    subject = load_subject(data)
    try:
        prior = load_prior_mesh(prior_path, "--prior (the output of `eavatar prior`)") if use_prior else None
    except PriorError as err:
        raise SystemExit(f"{err}; or set geometry.use_prior: false in {params_file}") from None
    result = train_stage1(subject, cfg, prior)
    out.mkdir(parents=True, exist_ok=True)
    mesh_path = out / "mesh.ply"
    canonical_mesh(result.model).export(mesh_path)
    save_geometry(out / "geometry.pt", result.model, cfg)
    history = write_history(out / "history.csv", result.history)
    summary = {
        "use_prior": use_prior,
        "prior_terms": {"paper": cfg.prior_loss.paper, "surface": cfg.prior_loss.surface} if use_prior else None,
        "iterations": cfg.iterations,
        "seconds": round(result.seconds, 1),
        "final_loss": result.history[-1]["loss"],
        "lmk": "used" if result.landmarks_used else "skipped: the subject has no 3D landmarks",
        **geometry_metrics(result.model, subject, frames),
    }
    if prior is not None and subject.template_mesh is not None:
        summary["prior_vs_template"] = mesh_metrics(prior, trimesh.load(subject.template_mesh, process=False))
    if avatar is not None:
        from eavatar.avatar.checkpoint import load_avatar
        from eavatar.metrics.geometry import distinct_frames, gaussian_geometry_metrics

        trained, _ = load_avatar(avatar, "cpu")
        summary["gaussians"] = gaussian_geometry_metrics(trained, subject, distinct_frames(subject, "test", frames))
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(summary, indent=2))
    with TrackedRun(run_name="geometry", tags={"stage": "geometry", "use_prior": str(use_prior)}) as tracked:
        tracked.log_params(params)
        for row in result.history[:: max(1, cfg.log_every)]:
            tracked.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])
        tracked.log_metrics({f"test/{k}": v for k, v in summary.get("test", {}).items() if isinstance(v, float)})
        tracked.log_artifacts([mesh_path, history, metrics] + ([prior_path] if prior is not None else []), artifact_path="geometry")
    return summary
