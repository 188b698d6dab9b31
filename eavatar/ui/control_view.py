"""Sparse expression control made visible (notebook 03): what moves, which Gaussians control, whom they move.

The numbers come from the functions training uses (HeadAvatar.frame, expression_reach,
neighbour_pairs, propagate), so the picture is the model's. The control set is computed
here from what tau compares (``select="expression"``: each Gaussian's reach, the farthest one
coefficient moves it; ``"frame"``: |f_exp_def| at this expression) even when control is off in
the avatar's config (then ``FrameGaussians.is_control`` is all False): it shows what control
*would* select.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from eavatar.avatar.control import control_mask, neighbour_pairs, propagate
from eavatar.avatar.model import HeadAvatar


@dataclass
class ControlSnapshot:
    """The avatar at one expression, seen through sparse control."""

    points: Tensor  # [N, 3] world positions at this expression and pose
    displacement: Tensor  # [N] |expression displacement| in head radii (after control when it is on)
    magnitude: Tensor  # [N] head radii, what tau compares (reach or |f_exp_def|, by the avatar's select)
    is_control: Tensor  # [N] bool, magnitude > tau
    canonical: Tensor  # [N, 3] canonical centres in head radii (where neighbourhoods are measured)
    tau: float
    head_rotation: Tensor  # [3, 3] world-from-head rotation: the 3D view looks at the face

    def control_by_strength(self) -> Tensor:  # [C] indices of control Gaussians, strongest first
        idx = torch.nonzero(self.is_control).squeeze(1)
        return idx[torch.argsort(self.magnitude[idx], descending=True)]


@torch.inference_mode()
def snapshot(avatar: HeadAvatar, expression: Tensor, head_pose: Tensor, tau: float | None = None) -> ControlSnapshot:
    """Evaluate the avatar at expression [d_exp] and pose [4, 4]; tau defaults to the avatar's."""
    tau = avatar.cfg.control.tau if tau is None else float(tau)
    g = avatar.frame(expression, head_pose)
    canonical = (avatar.canonical.params["means"] - avatar.center) / avatar.radius
    magnitude = avatar.expression_reach() if avatar.cfg.control.select == "expression" else g.exp_magnitude
    return ControlSnapshot(
        points=g.means.clone(),
        displacement=(g.exp_displacement / avatar.radius).norm(dim=-1),
        magnitude=magnitude.clone(),
        is_control=control_mask(magnitude[:, None], tau),  # |scalar| > tau
        canonical=canonical.clone(),
        tau=tau,
        head_rotation=head_pose[:3, :3].detach().cpu().clone(),
    )


def influence(snap: ControlSnapshot, control: int, radius: float, sigma: float, *, falloff: bool) -> tuple[Tensor, Tensor]:
    """Neighbours [K] of control Gaussian ``control`` within ``radius`` and their blend weights w_ij [K].

    The weights are read off :func:`propagate` itself with a unit displacement on ``control``
    alone, so they are exactly what training uses (divided by every control Gaussian's weight
    near each neighbour, not only this one's; ``falloff`` as the avatar's ``control.blend``).
    """
    if not bool(snap.is_control[control]):
        raise ValueError(f"Gaussian {control} is not a control Gaussian at this expression (compared value {float(snap.magnitude[control]):.4f} <= tau = {snap.tau})")
    j, i = neighbour_pairs(snap.canonical, snap.is_control, radius)
    neighbours = torch.unique(j[i == control])
    unit = torch.zeros_like(snap.canonical)
    unit[control, 0] = 1.0
    weights = propagate(snap.canonical, unit, snap.is_control, radius, sigma, falloff=falloff)[:, 0]
    return neighbours, weights[neighbours]


def figure(snap: ControlSnapshot, control: int | None = None, neighbours: Tensor | None = None, weights: Tensor | None = None, title: str = ""):
    """Plotly 3D scene: every Gaussian coloured by displacement, control Gaussians, one control's influence."""
    import plotly.graph_objects as go

    p = snap.points.numpy()
    fig = go.Figure()
    marker = dict(size=2, color=snap.displacement.numpy(), colorscale="Viridis", colorbar=dict(title=dict(text="|dx| (head radii)", side="right"), x=1.0))
    fig.add_scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", marker=marker, name="Gaussians", hoverinfo="skip")
    c = snap.control_by_strength().numpy()
    fig.add_scatter3d(x=p[c, 0], y=p[c, 1], z=p[c, 2], mode="markers", marker=dict(size=4, color="red", symbol="diamond"), name=f"control (> tau = {snap.tau:g}): {len(c)}", text=[f"#{k}" for k in c])
    if control is not None and neighbours is not None and weights is not None:
        n = neighbours.numpy()
        weight_scale = [[0.0, "#ffc04d"], [1.0, "#7f0000"]]  # orange to dark red: even small weights stay visible
        w_marker = dict(size=6, color=weights.numpy(), colorscale=weight_scale, cmin=0, cmax=1, line=dict(width=1, color="black"), colorbar=dict(title=dict(text="w_ij", side="right"), x=1.12))
        fig.add_scatter3d(x=p[n, 0], y=p[n, 1], z=p[n, 2], mode="markers", marker=w_marker, name=f"moved by #{control}: {len(n)}", text=[f"w={w:.2f}" for w in weights.tolist()])
        fig.add_scatter3d(x=p[[control], 0], y=p[[control], 1], z=p[[control], 2], mode="markers", marker=dict(size=10, color="black", symbol="x"), name=f"control #{control}")
    right, up, forward = (snap.head_rotation[:, k].tolist() for k in range(3))  # look at the face, head up
    eye = dict(zip("xyz", (1.8 * f + 0.4 * r + 0.3 * u for f, r, u in zip(forward, right, up))))
    scene = dict(aspectmode="data", camera=dict(eye=eye, up=dict(zip("xyz", up))))
    fig.update_layout(title=title, scene=scene, height=520, margin=dict(l=0, r=0, t=30 if title else 0, b=0), legend=dict(x=0, y=1))
    return fig


def summary(snap: ControlSnapshot) -> dict[str, float]:
    """Counts and magnitudes for a one-line caption."""
    m = snap.magnitude
    return {"gaussians": len(m), "control": int(snap.is_control.sum()), "max vs tau": float(m.max()), "median vs tau": float(m.median())}


def build_widget(avatar: HeadAvatar, labels: list[str], head_pose: Tensor, shown: list[str] | None = None, radius: float | None = None, sigma: float | None = None):
    """Sliders for a few coefficients, tau, and which control Gaussian (by strength) to inspect, above the 3D view.

    Returns (panel, controls by name, view) where ``view`` holds the current snapshot and figure.
    """
    import ipywidgets as W
    from IPython.display import display

    ctrl = avatar.cfg.control
    radius, sigma = ctrl.radius if radius is None else radius, ctrl.sigma if sigma is None else sigma
    shown = list(shown or labels[:4])
    style = {"description_width": "110px"}
    controls = {label: W.FloatSlider(0.0, min=0.0, max=1.0, step=0.05, description=label, continuous_update=False, style=style) for label in shown}
    controls["tau"] = W.FloatSlider(ctrl.tau, min=0.0, max=0.3, step=0.005, readout_format=".3f", description="tau", continuous_update=False, style=style)
    controls["control rank"] = W.IntSlider(0, min=0, max=0, description="control rank", continuous_update=False, style=style)
    out, caption = W.Output(), W.HTML()
    view: dict = {}
    busy = {"on": False}

    def redraw(*_):
        if busy["on"]:
            return
        busy["on"] = True  # changing the rank slider's max may move its value: one redraw, not two
        try:
            _redraw()
        finally:
            busy["on"] = False

    def _redraw():
        code = torch.zeros(len(labels))
        for label in shown:
            code[labels.index(label)] = controls[label].value
        snap = snapshot(avatar, code, head_pose, controls["tau"].value)
        order = snap.control_by_strength()
        controls["control rank"].max = max(len(order) - 1, 0)
        chosen = int(order[min(controls["control rank"].value, len(order) - 1)]) if len(order) else None
        nb, w = influence(snap, chosen, radius, sigma, falloff=ctrl.falloff) if chosen is not None else (None, None)
        view.update(snapshot=snap, control=chosen, neighbours=nb, weights=w, figure=figure(snap, chosen, nb, w))
        s = summary(snap)
        caption.value = f"{s['gaussians']:,} Gaussians, <b>{s['control']:,} control</b> (tau = {snap.tau:g} head radii); largest value tau compares {s['max vs tau']:.3f}" + (
            f"; control #{chosen} moves {len(nb)} neighbours within r = {radius:g}" if chosen is not None else "; no control Gaussian at this expression and tau"
        )
        with out:
            out.clear_output(wait=True)
            display(view["figure"])

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([W.VBox([controls[label] for label in shown]), W.VBox([controls["tau"], controls["control rank"]])]), caption, out]), controls, view
