"""Tracked against refined: the codes and head poses that tracking refinement moved, over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def refinement_curves(avatar_path: Path, data: Path, strongest: int = 4) -> dict:
    """The training frames of one camera in time order per sequence, and for the ``strongest``
    coefficients (largest RMS change) their tracked and refined values; the pose correction's
    angle (degrees) and shift (head radii) per frame."""
    from scipy.spatial.transform import Rotation

    from eavatar.data.subject import load_subject
    from eavatar.data.tracking_noise import head_radius
    from eavatar.pipeline.refine_export import refined_controls

    subject = load_subject(data)
    expressions, poses, changed = refined_controls(avatar_path, data)
    camera = subject.camera_ids()[0]
    in_time = [subject.frames_of_sequence(s, camera) for s in subject.sequence_names()]
    frames = np.concatenate([f[changed[f]] for f in in_time])
    change = expressions[frames] - subject.expressions[frames]
    order = np.argsort(-np.sqrt((change**2).mean(0)))[:strongest]
    relative = np.linalg.inv(subject.head_poses[frames].astype(np.float64)) @ poses[frames]
    return {
        "frames": frames,
        "sequence": [subject.sequences[i] for i in frames],
        "timestep": subject.timesteps[frames],
        "labels": [subject.expression_labels[k] for k in order],
        "tracked": subject.expressions[frames][:, order],
        "refined": expressions[frames][:, order],
        "rotation_deg": np.degrees(np.linalg.norm(Rotation.from_matrix(relative[:, :3, :3]).as_rotvec(), axis=1)),
        "shift": np.linalg.norm(poses[frames, :3, 3] - subject.head_poses[frames, :3, 3], axis=1) / head_radius(subject),
    }


def refinement_figure(avatar_path: Path, data: Path, strongest: int = 4):
    """A plotly figure of :func:`refinement_curves`: one panel per coefficient (tracked dashed,
    refined solid), then the pose correction."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = refinement_curves(avatar_path, data, strongest)
    x = np.arange(len(c["frames"]))
    titles = [*c["labels"], "head pose correction"]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.04)
    for row, label in enumerate(c["labels"], start=1):
        fig.add_trace(go.Scatter(x=x, y=c["tracked"][:, row - 1], name="tracked", line=dict(dash="dash", color="gray"), showlegend=row == 1), row=row, col=1)
        fig.add_trace(go.Scatter(x=x, y=c["refined"][:, row - 1], name="refined", line=dict(color="crimson"), showlegend=row == 1), row=row, col=1)
    last = len(titles)
    fig.add_trace(go.Scatter(x=x, y=c["rotation_deg"], name="rotation (deg)"), row=last, col=1)
    fig.add_trace(go.Scatter(x=x, y=c["shift"] * 100, name="shift (% head radius)"), row=last, col=1)
    fig.update_layout(height=170 * len(titles), title="Tracked and refined controls of the training frames", margin=dict(t=60, b=30))
    fig.update_xaxes(title_text="training frame (time order)", row=last, col=1)
    return fig
