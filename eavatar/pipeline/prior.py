"""The prior stage: a generated mesh aligned to head space, or the offline visual hull (docs/geometry.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eavatar.config import apply_overrides, load_params


def alignment_target(subject, cfg):
    """The head-space mesh a generated prior is registered to."""
    from eavatar.geometry.prior import PriorError, load_prior_mesh, visual_hull

    if cfg.align.target == "visual_hull":
        return visual_hull(subject, cfg.visual_hull)
    if cfg.align.target == "template":
        if subject.template_mesh is None:
            raise PriorError(f"{subject.transforms_path}: template_mesh: missing, so prior.align.target: template cannot work; use visual_hull")
        return load_prior_mesh(subject.template_mesh, f"{subject.transforms_path}: template_mesh")
    raise PriorError(f"prior.align.target: expected visual_hull or template, got {cfg.align.target!r}")


def make_aligned_prior(subject, cfg) -> tuple:
    """(head-space prior mesh, alignment report)."""
    from eavatar.geometry.align import align_similarity
    from eavatar.geometry.prior import make_prior

    mesh, in_head_space = make_prior(subject, cfg)
    if in_head_space:
        return mesh, {"aligned": False, "reason": f"{cfg.provider} is built in head space"}
    alignment = align_similarity(mesh, alignment_target(subject, cfg), cfg.align)
    report = {"aligned": True, "target": cfg.align.target, "matrix": np.round(alignment.matrix, 8).tolist(), **alignment.metrics}
    return alignment.apply(mesh), report


def prior_stage(params_file: Path, data: Path, out: Path) -> dict:
    """``eavatar prior``: ``out``/prior.ply and alignment.json from params ``prior``, logged to MLflow; returns the report.

    A :class:`PriorError` leaves as a SystemExit that names the params file.
    """
    from eavatar.data.subject import load_subject
    from eavatar.geometry.prior import PriorConfig, PriorError
    from eavatar.tracking.mlflow_run import TrackedRun

    params = load_params(params_file, "prior")
    try:
        cfg = apply_overrides(PriorConfig(), params, f"{params_file}:prior")
        mesh, report = make_aligned_prior(load_subject(data), cfg)
    except PriorError as err:
        raise SystemExit(f"{params_file}: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    mesh_path = out / "prior.ply"
    mesh.export(mesh_path)
    report = {"provider": cfg.provider, "source": cfg.mesh_file or cfg.generator.weights or "training masks", "vertices": len(mesh.vertices), "faces": len(mesh.faces), **report}
    (out / "alignment.json").write_text(json.dumps(report, indent=2))
    with TrackedRun(run_name=f"prior-{cfg.provider}", tags={"stage": "prior"}) as tracked:
        tracked.log_params(params)
        tracked.log_metrics({f"align/{k}": v for k, v in report.items() if isinstance(v, float)})
        tracked.log_artifacts([mesh_path, out / "alignment.json"], artifact_path="prior")
    return report
