"""Notebook 03's logic: control set, influence regions and weights as training computes them, the 3D figure, the widget."""

import pytest
import torch

from eavatar.avatar.control import SparseControlConfig
from eavatar.ui.control_view import build_widget, figure, influence, snapshot
from tests.avatar.conftest import make_avatar

LABELS = ["jaw_open", "smile", "brow_raise", "blink"]


@pytest.fixture(scope="module")
def avatar():
    avatar = make_avatar(n=400, d_exp=4, seed=1).eval()
    avatar.cfg.control = SparseControlConfig(enabled=False)  # the view shows the control set of an avatar trained without it too
    return avatar


TAU_QUANTILE = 0.8  # of what tau compares: a fifth of the Gaussians control


@pytest.fixture(scope="module")
def snap(avatar):
    return snapshot(avatar, torch.tensor([1.0, 0.5, 0.0, 0.0]), torch.eye(4), tau=float(avatar.expression_reach().quantile(TAU_QUANTILE)))


def test_control_set_is_magnitude_over_tau_even_when_control_is_off(avatar, snap):
    assert not avatar.cfg.control.enabled and avatar.cfg.control.select == "expression"
    torch.testing.assert_close(snap.magnitude, avatar.expression_reach())  # the same at every code
    assert torch.equal(snap.is_control, snap.magnitude > snap.tau)
    assert 0 < int(snap.is_control.sum()) < len(snap.magnitude)
    order = snap.control_by_strength()
    assert snap.magnitude[order].diff().le(0).all() and snap.is_control[order].all()


def test_with_the_papers_per_frame_selection_the_view_compares_this_frames_displacement(avatar):
    avatar.cfg.control = SparseControlConfig(enabled=False, select="frame")
    try:
        code = torch.tensor([1.0, 0.5, 0.0, 0.0])
        snap = snapshot(avatar, code, torch.eye(4), tau=0.08)
        torch.testing.assert_close(snap.magnitude, avatar.frame(code, torch.eye(4)).exp_magnitude)
        assert torch.equal(snap.is_control, snap.magnitude > 0.08) and 0 < int(snap.is_control.sum()) < len(snap.magnitude)
    finally:
        avatar.cfg.control = SparseControlConfig(enabled=False)


@pytest.mark.parametrize("falloff", [True, False])
def test_influence_is_the_neighbourhood_and_the_blend_weights(snap, falloff):
    radius, sigma = 0.3, 0.15
    control = int(snap.control_by_strength()[0])
    neighbours, weights = influence(snap, control, radius, sigma, falloff=falloff)
    x, ctrl = snap.canonical, snap.is_control
    dist = (x - x[control]).norm(dim=-1)
    expected = torch.nonzero((dist <= radius) & ~ctrl).squeeze(1)
    assert len(expected) > 0 and torch.equal(neighbours, expected)
    # the docstring formula of eavatar.avatar.control, by brute force over all control Gaussians
    d2 = ((x[neighbours, None] - x[None, ctrl]) ** 2).sum(-1)  # [K, C]
    near = d2.sqrt() <= radius
    kernel = torch.exp(-d2 / sigma**2) * near
    column = int(torch.nonzero(torch.nonzero(ctrl).squeeze(1) == control))
    total = kernel.sum(1).clamp(min=1.0) if falloff else kernel.sum(1)
    torch.testing.assert_close(weights, kernel[:, column] / total)
    assert ((weights > 0) & (weights <= 1)).all()


def test_influence_of_a_non_control_gaussian_is_an_error(snap):
    free = int(torch.nonzero(~snap.is_control)[0])
    with pytest.raises(ValueError, match=f"Gaussian {free} is not a control Gaussian"):
        influence(snap, free, 0.1, 0.05, falloff=True)


def test_figure_shows_gaussians_controls_and_one_influence_region(snap):
    control = int(snap.control_by_strength()[0])
    neighbours, weights = influence(snap, control, 0.3, 0.15, falloff=True)
    fig = figure(snap, control, neighbours, weights)
    assert [len(t.x) for t in fig.data] == [len(snap.points), int(snap.is_control.sum()), len(neighbours), 1]
    assert list(fig.data[0].marker.color) == pytest.approx(snap.displacement.tolist())
    assert len(figure(snap).data) == 2


def test_widget_redraws_on_sliders_and_tau(avatar):
    tau = round(float(avatar.expression_reach().quantile(TAU_QUANTILE)) / 0.005) * 0.005  # on the slider's steps
    avatar.cfg.control = SparseControlConfig(tau=tau, radius=0.3, sigma=0.15)
    panel, controls, view = build_widget(avatar, LABELS, torch.eye(4), shown=LABELS[:2])
    neutral = view["snapshot"].displacement.clone()
    controls["jaw_open"].value = 1.0
    assert (view["snapshot"].displacement - neutral).abs().max() > 1e-4
    many = int(view["snapshot"].is_control.sum())
    assert controls["control rank"].max == many - 1 and view["control"] == int(view["snapshot"].control_by_strength()[0])
    controls["control rank"].value = 1
    assert view["control"] == int(view["snapshot"].control_by_strength()[1])
    controls["tau"].value = 0.3
    assert int(view["snapshot"].is_control.sum()) < many
